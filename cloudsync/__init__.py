"""Cloud sync: S3 and Rekognition (arrives with the cloud-sync work). Imports nothing of ours."""
