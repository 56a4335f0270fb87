"""In-process fakes of the cloud services shutterbox talks to, for tests only."""
