"""Downloads of tuned models as zip files, streamed without touching torch."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path


def stream_zip(folder: Path, root_name: str, include: list[Path] | None = None) -> Iterator[bytes]:
    """Yield a zip of `folder` (stored entries under `root_name/`) piece by piece.

    Safetensors do not compress; storing them lets the first bytes leave at once and keeps memory flat.
    """

    class _Sink(io.RawIOBase):
        def __init__(self) -> None:
            self.chunks: list[bytes] = []
            self.position = 0

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:  # type: ignore[override]
            self.chunks.append(bytes(data))
            self.position += len(data)
            return len(data)

        def tell(self) -> int:
            return self.position

    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        roots = include if include is not None else [folder]
        paths = sorted({p for root in roots for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()})
        for path in paths:
            with open(path, "rb") as source, archive.open(f"{root_name}/{path.relative_to(folder)}", "w",
                                                             force_zip64=True) as target:
                while block := source.read(1 << 20):
                    target.write(block)
                    if sink.chunks:
                        yield b"".join(sink.chunks)
                        sink.chunks.clear()
            if sink.chunks:
                yield b"".join(sink.chunks)
                sink.chunks.clear()
    if sink.chunks:
        yield b"".join(sink.chunks)
