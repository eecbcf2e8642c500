"""Where a page gets its data: selections from a result and analyses computed on demand.

Filtering, sorting and paging the samples, the grid's pages, nearest neighbours, class
probabilities, 2-D projections of the embeddings and thumbnails: what the app's pages and
the HTML report show beyond the result's own numbers. Nothing here draws or words.
"""
