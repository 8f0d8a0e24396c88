"""The ceiling: a bare FastAPI hello endpoint, served with the same uvicorn settings."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
