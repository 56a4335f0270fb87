"""The camera-facing FTP/FTPS server. The only package that imports pyftpdlib.

Runs on its own threads: one acceptor thread per listener (each with its own IOLoop), and one
thread per camera session (pyftpdlib's ThreadedFTPServer), so an fsync on a slow SD card stalls
one camera, not all of them. It reaches the Store only through ``appliance.bridge``.
"""

from appliance.ftp.server import FtpService

__all__ = ["FtpService"]
