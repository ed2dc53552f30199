"""Import of a platform's own labelled history (`ticketguard import FILE`).

- `read_labelled_file(path, mapping)` → History, no database needed (training reads files through it);
- `import_file(conn, path, mapping)` → ImportReport, checks against and writes into the database in the
  caller's transaction;
- `ImportValidationError` lists every problem, each naming the file's row and column.
"""

from ticketguard.ingest.errors import ImportValidationError, Problem
from ticketguard.ingest.mapping import load_mapping_file, parse_map_options
from ticketguard.ingest.service import (
    ImportReport,
    import_file,
    read_labelled_file,
    write_id_map,
    write_quarantine,
)
from ticketguard.ingest.validate import DEFAULT_LABEL_DELAY

__all__ = [
    "DEFAULT_LABEL_DELAY",
    "ImportReport",
    "ImportValidationError",
    "Problem",
    "import_file",
    "load_mapping_file",
    "parse_map_options",
    "read_labelled_file",
    "write_id_map",
    "write_quarantine",
]
