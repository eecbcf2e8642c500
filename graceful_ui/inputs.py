"""Re-exports, for imports written before the split; new code imports from the modules themselves.

What to compare lives in modules named for their job:

- :mod:`graceful_ui.spec`: :class:`~graceful_ui.spec.Spec`, one comparison's inputs (server paths, label, URL id);
- :mod:`graceful_ui.bundled_specs`: the bundled samples' pairs and the ``graceful app OLD NEW`` pair;
- :mod:`graceful_ui.trained_specs`: a trained update against its old model;
- :mod:`graceful_ui.uploaded_files`: uploads checked, stored content-addressed and described;
- :mod:`graceful_ui.upload_specs`: the specs of uploaded files;
- :mod:`graceful_ui.spec_ids`: a URL id back to its spec (:func:`~graceful_ui.spec_ids.resolve_spec`).
"""

from __future__ import annotations

from graceful_ui.bundled_specs import (
    CLI_ENV_DATA,
    CLI_ENV_NEW,
    CLI_ENV_OLD,
    RESEED_MARK,
    RESEED_SUFFIX,
    bundled_reference,
    bundled_sample,
    bundled_specs,
    cli_spec,
    pair_spec,
    sample_data_dir,
    spec_sample,
    with_reference,
)
from graceful_ui.spec import Spec, user_message
from graceful_ui.spec_ids import resolve_spec
from graceful_ui.trained_specs import TRAINED_PREFIX, trained_models_dir, trained_spec
from graceful_ui.upload_specs import pair_spec_of_files, spec_from_files, spec_from_uploads
from graceful_ui.uploaded_files import (
    MODEL_FORMATS,
    ROLE_SUFFIXES,
    ROLE_WHAT,
    StoredFile,
    Upload,
    check_upload,
    server_file,
    store_file,
    uploads_dir,
)

__all__ = [
    "CLI_ENV_DATA",
    "CLI_ENV_NEW",
    "CLI_ENV_OLD",
    "MODEL_FORMATS",
    "RESEED_MARK",
    "RESEED_SUFFIX",
    "ROLE_SUFFIXES",
    "ROLE_WHAT",
    "TRAINED_PREFIX",
    "Spec",
    "StoredFile",
    "Upload",
    "bundled_reference",
    "bundled_sample",
    "bundled_specs",
    "check_upload",
    "cli_spec",
    "pair_spec",
    "pair_spec_of_files",
    "resolve_spec",
    "sample_data_dir",
    "server_file",
    "spec_from_files",
    "spec_from_uploads",
    "spec_sample",
    "store_file",
    "trained_models_dir",
    "trained_spec",
    "uploads_dir",
    "user_message",
    "with_reference",
]
