"""Model files: TorchScript (``.pt``) and ONNX (``.onnx``) behind one :class:`~graceful_core.types.Model`.

Use :func:`graceful_core.models.loader.load_model`; it detects the format by content
and never unpickles a checkpoint.
"""
