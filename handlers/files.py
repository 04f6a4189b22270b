"""Files: multipart upload, then metadata or content download."""
from __future__ import annotations

import uuid
from typing import Any

from brrt_actors import HTTPError, Request, Response, UploadedFile

from ._store import STORE

OCTET_STREAM = "application/octet-stream"


def upload_file(request: Request) -> Response:
    """Store the uploaded file; answer 201 with its metadata and Location."""
    body: dict[str, Any] = request.body
    upload = body["file"]
    if isinstance(upload, UploadedFile):
        filename, content_type, content = upload.filename, upload.content_type, upload.content
    else:  # a plain field where a file was expected: keep its text
        filename, content_type, content = None, "text/plain", str(upload).encode()
    file_id = str(uuid.uuid4())
    info: dict[str, Any] = {
        "id": file_id,
        "filename": filename or "upload.bin",
        "content_type": content_type or OCTET_STREAM,
        "size": len(content),
        "url": f"/download/{file_id}",
    }
    if body.get("description"):
        info["description"] = body["description"]
    STORE.files[file_id] = info
    STORE.file_contents[file_id] = content
    return Response(201, info, {"Location": info["url"]})


def download_file(request: Request) -> Any:
    """Describe the file as JSON; return its bytes when the client accepts only those."""
    file_id = str(request.path_params["id"]).lower()
    info = STORE.files.get(file_id)
    if info is None:
        raise HTTPError(404, f"file {file_id} not found")
    accept = str(request.headers.get("accept", ""))
    if OCTET_STREAM in accept and "json" not in accept:
        return Response(200, STORE.file_contents[file_id], content_type=OCTET_STREAM)
    return info
