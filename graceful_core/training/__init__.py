"""Reference training for graceful: architectures, regression-reducing losses, trainer, export.

Import the submodules directly (``graceful_core.training.trainer`` etc.); this package
module stays empty so that importing one part does not import the others.
"""
