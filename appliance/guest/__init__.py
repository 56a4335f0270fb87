"""Guest pages: selfie search, photo links, downloads and host links on the venue LAN."""
