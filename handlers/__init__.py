"""TorchServe handlers for the sentiment models.

This package is copied whole into every .mar (see scripts/packaging/build_archive.py), so
`handlers.contract` imports identically inside a TorchServe worker and in tests.
"""

import logging

# TorchServe's base handler logs at import that optional accelerators are absent. True of every
# CPU install and no fault, they were the first lines `make serve` printed (from calibration,
# which loads a handler) and open every worker's log. Only these records are dropped: that
# logger's other warnings and errors pass. This package is imported before the base handler
# everywhere (each handler module imports handlers.* first), so the filter is in place in time.
TORCHSERVE_NOTICES = frozenset({"OpenVINO is not enabled", "Torch TensorRT not enabled"})


def _not_a_notice(record: logging.LogRecord) -> bool:
    return record.getMessage() not in TORCHSERVE_NOTICES


logging.getLogger("ts.torch_handler.base_handler").addFilter(_not_a_notice)
