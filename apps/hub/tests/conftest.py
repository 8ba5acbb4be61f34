"""The Hub tests reuse the transfer tests' world of variants with stored files and their private state."""

from apps.transfers.tests.conftest import files_world, private_transfer_state  # noqa: F401
