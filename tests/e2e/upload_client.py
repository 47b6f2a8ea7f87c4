#!/usr/bin/env python3
"""Sends a large request body the way common clients do (Python's http.client: the whole
body first, then the response) and prints the status the server answered, or the error
the client met. The body is generated while sending, never held in memory.

usage: upload_client.py URL BYTES [chunked] [HEADER:VALUE ...]"""
import http.client
import sys
import urllib.parse


def body(size):
    block = b"x" * 65536
    sent = 0
    while sent < size:
        n = min(len(block), size - sent)
        yield block[:n]
        sent += n


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    size = int(sys.argv[2])
    rest = sys.argv[3:]
    chunked = bool(rest) and rest[0] == "chunked"
    headers = {"Content-Type": "application/json"}
    for h in rest[1 if chunked else 0:]:
        k, _, v = h.partition(":")
        headers[k] = v
    if not chunked:
        headers["Content-Length"] = str(size)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request("POST", url.path, body=body(size), headers=headers,
                     encode_chunked=chunked)
        resp = conn.getresponse()
        print(resp.status, resp.read().decode("utf-8", "replace").strip())
    except Exception as e:  # the test reports what the client saw
        print("error", type(e).__name__, e)


main()
