"""The local face index: dlib in worker processes, embeddings per event in SQLite, exact search."""
