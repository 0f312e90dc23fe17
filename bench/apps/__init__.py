"""The reference apps skship is measured against, each served by uvicorn exactly like skship."""
