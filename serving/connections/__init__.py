"""Connection-level protections for the HTTP server (docs/security.md).

uvicorn's httptools protocol parses requests without limits: it buffers a header of any
size, keeps a connection that sends nothing open forever, accepts connections until the
process runs out of file descriptors, and passes ``Transfer-Encoding: gzip, chunked`` as
plain chunked. ``protocol_class`` returns a thin subclass of it that enforces the limits
of ``ConnectionLimits``; serving/server.py hands it to uvicorn.
"""

from serving.connections.limits import ConnectionLimits
from serving.connections.protocol import protocol_class

__all__ = ["ConnectionLimits", "protocol_class"]
