"""Published scaling-law tables shipped inside the package, so fits and tests need no neighbouring folder.

The provenance of every table (source repository and commit, column meanings, caveats, licences) is the
package's `data/README.md`; `provenance(name)` returns the part about one table. The index below is read
from that README's summary table, so the README stays the single description of the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from scalinglab.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DatasetInfo", "names", "list_datasets", "info", "path", "load", "provenance", "read_bytes"]

_README = "README.md"


@dataclass(frozen=True)
class DatasetInfo:
    """One packaged table: its name (file stem), file, title, source, licence and row count."""

    name: str
    file: str
    title: str
    rows: int
    source: str
    path_in_source: str
    licence: str


def _data_dir() -> Path:
    return Path(str(resources.files("scalinglab.datasets") / "data"))


def _readme() -> str:
    return (_data_dir() / _README).read_text(encoding="utf-8")


def _packaged_file(csv_name: str) -> str:
    """The file that holds `csv_name` in the package: the CSV itself or its gzip copy."""
    return csv_name if (_data_dir() / csv_name).is_file() else csv_name + ".gz"


@lru_cache(maxsize=1)
def _index() -> dict[str, DatasetInfo]:
    text = _readme()
    titles = dict(re.findall(r"^## \d+\. `([^`]+\.csv)` — (.+)$", text, flags=re.M))
    out: dict[str, DatasetInfo] = {}
    row = re.compile(r"^\| `([^`]+\.csv)` \| (\d+) \| (.+?) \| `([^`]+)` \| (.+?) \|$", flags=re.M)
    for csv_name, rows, source, src_path, licence in row.findall(text):
        name = csv_name.removesuffix(".csv")
        out[name] = DatasetInfo(name=name, file=_packaged_file(csv_name), title=titles.get(csv_name, ""),
                                rows=int(rows), source=source.replace("`", ""), path_in_source=src_path,
                                licence=licence)
    return out


def names() -> list[str]:
    """Names of the packaged tables, sorted."""
    return sorted(_index())


def list_datasets() -> list[DatasetInfo]:
    """Every packaged table with its provenance summary."""
    return [_index()[n] for n in names()]


def info(name: str) -> DatasetInfo:
    """The summary of one table; an unknown name is a UserError listing the known ones."""
    idx = _index()
    key = name.removesuffix(".gz").removesuffix(".csv")
    if key not in idx:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(names())}")
    return idx[key]


def path(name: str) -> Path:
    """Path of the packaged file (pandas reads the `.csv.gz` one directly)."""
    return _data_dir() / info(name).file


def read_bytes(name: str) -> bytes:
    """The table as the uncompressed CSV bytes of its source (checksums in the README match these)."""
    import gzip

    p = path(name)
    data = p.read_bytes()
    return gzip.decompress(data) if p.suffix == ".gz" else data


def load(name: str) -> pd.DataFrame:
    """The table as a DataFrame, with the canonical columns N, D, C, L and the source's extra columns."""
    import pandas as pd

    return pd.read_csv(path(name))


def provenance(name: str | None = None) -> str:
    """The README section about one table (its source, columns, ranges, caveats), or the whole README."""
    text = _readme()
    if name is None:
        return text
    csv_name = info(name).name + ".csv"
    m = re.search(rf"^## \d+\. `{re.escape(csv_name)}`.*?(?=^## |\Z)", text, flags=re.M | re.S)
    return m.group(0).rstrip().removesuffix("---").rstrip() + "\n" if m else ""
