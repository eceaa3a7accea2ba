"""Sub-commands of the ``tritonvision`` CLI (see ``tritonvision.cli``)."""
