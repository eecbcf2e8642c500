"""How a result is said: verdict sentences, the HTML report, figures, CI output formats.

Every face (the command line, the HTML report, the app's pages) takes its words from
here and from :mod:`graceful_core.vocabulary`; a result never imports its renderer.
"""
