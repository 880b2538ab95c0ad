"""Downloads of tuned models as zip files, streamed from the artifact storage without touching torch."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

from store import artifacts


def stream_zip(name: str, root_name: str) -> Iterator[bytes]:
    """Yield a zip of the artifact `name` (stored entries under `root_name/`) piece by piece; the files are
    read from the artifact storage as they go. Raises ArtifactMissing before the first byte when it is gone.

    Safetensors do not compress; storing them lets the first bytes leave at once and keeps memory flat.
    """
    files = artifacts.files(name)  # here, so a missing artifact is an error the view sees, not a broken zip
    return _zip(name, root_name, files)


class _Sink(io.RawIOBase):
    """Where the zip writer puts its bytes until the generator hands them out."""

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


def _zip(name: str, root_name: str, files: list[artifacts.ArtifactFile]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for item in files:
            with artifacts.open_file(name, item.path) as source, archive.open(f"{root_name}/{item.path}", "w",
                                                                               force_zip64=True) as target:
                for block in source.chunks(1 << 20):
                    target.write(block)
                    if sink.chunks:
                        yield b"".join(sink.chunks)
                        sink.chunks.clear()
            if sink.chunks:
                yield b"".join(sink.chunks)
                sink.chunks.clear()
    if sink.chunks:
        yield b"".join(sink.chunks)
