"""A Cloud Run service that speaks WebSocket, served with the `websockets` library as in Google's WebSocket guide.

Each message is answered with `echo: <message>`; the first message after connecting names the path and whether a
token reached the instance (the gateway removes the signature of a verified one).
"""
import asyncio
import json
import os

from websockets.asyncio.server import serve


async def echo(websocket):
    request = websocket.request
    await websocket.send(
        json.dumps(
            {
                "path": request.path,
                "authorization": "Authorization" in request.headers,
            }
        )
    )
    async for message in websocket:
        await websocket.send(f"echo: {message}")


async def main():
    async with serve(echo, "", int(os.environ["PORT"])) as server:
        await server.serve_forever()


asyncio.run(main())
