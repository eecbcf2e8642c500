"""Model files: torch.export (``.pt2``), TorchScript (``.pt``) and ONNX (``.onnx``) behind one
:class:`~graceful_core.types.Model`; in-memory ``nn.Module``s through :mod:`.module`.

Use :func:`graceful_core.models.loader.load_model`; it detects the format by content,
never unpickles a checkpoint, and checks a ``.pt2`` archive completely before torch reads it
(:mod:`.pt2`). :mod:`.devices` chooses where models run. The contract: ``docs/models.md``.
"""
