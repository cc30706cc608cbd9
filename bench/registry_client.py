#!/usr/bin/env python3
"""The OCI distribution client bench/run.sh measures both registries with.

Standard library only, one persistent HTTP/1.1 connection per stream of
requests, 1 MiB socket writes: the same client for both registries, so the
ratio compares the servers. Each subcommand prints one number (or a JSON
object) on stdout.
"""

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

IO_BLOCK = 1 << 20
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Registry:
    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port

    def connect(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=600, blocksize=IO_BLOCK)


# Sent on every request when set (bench/run.sh puts a Wharf token here; the
# reference registry, which runs without authentication, ignores it).
AUTHORIZATION = os.environ.get("REGISTRY_AUTHORIZATION")


def call(conn, method, path, body=None, headers=None, expect=None):
    headers = dict(headers or {})
    if AUTHORIZATION:
        headers["Authorization"] = AUTHORIZATION
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if expect is not None and resp.status != expect:
        sys.exit(f"{method} {path}: {resp.status} {data[:300]!r}")
    return resp, data


def location(resp):
    loc = resp.getheader("Location")
    if not loc:
        sys.exit("no Location header")
    split = urllib.parse.urlsplit(loc)
    return split.path + ("?" + split.query if split.query else "")


def with_digest(path, digest):
    return path + ("&" if "?" in path else "?") + "digest=" + digest


def start_upload(conn, repo):
    resp, _ = call(conn, "POST", f"/v2/{repo}/blobs/uploads/", b"", {"Content-Length": "0"}, 202)
    return location(resp)


def push_monolithic(conn, repo, body, size, digest):
    loc = start_upload(conn, repo)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    call(conn, "PUT", with_digest(loc, digest), body, headers, 201)


def push_chunked(conn, repo, f, size, digest, chunk):
    loc = start_upload(conn, repo)
    offset = 0
    while offset < size:
        data = f.read(chunk)
        end = offset + len(data) - 1
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data)),
            "Content-Range": f"{offset}-{end}",
        }
        resp, _ = call(conn, "PATCH", loc, data, headers, 202)
        loc = location(resp)
        offset = end + 1
    call(conn, "PUT", with_digest(loc, digest), b"", {"Content-Length": "0"}, 201)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(IO_BLOCK):
            h.update(block)
    return "sha256:" + h.hexdigest()


def cmd_push_blob(args):
    reg = Registry(args.registry)
    size = os.path.getsize(args.file)
    conn = reg.connect()
    with open(args.file, "rb") as f:
        start = time.perf_counter()
        if args.chunk:
            push_chunked(conn, args.repo, f, size, args.digest, args.chunk)
        else:
            push_monolithic(conn, args.repo, f, size, args.digest)
        elapsed = time.perf_counter() - start
    print(f"{size / elapsed / 1e6:.1f}")  # MB/s


def put_manifest(conn, repo, tag, config, layers):
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config[0], "size": config[1]},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s} for d, s in layers
        ],
    }
    body = json.dumps(manifest).encode()
    call(conn, "PUT", f"/v2/{repo}/manifests/{tag}", body, {"Content-Type": OCI_MANIFEST}, 201)


def cmd_push_image(args):
    """Push `layers` random layers of `layer_mib` MiB with `parallel` uploads at
    once (as docker and containerd do), then config and manifest. Prints seconds."""
    reg = Registry(args.registry)
    layers = [os.urandom(args.layer_mib << 20) for _ in range(args.layers)]
    digests = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()

    def push(i):
        conn = reg.connect()
        push_monolithic(conn, args.repo, layers[i], len(layers[i]), digests[i])
        conn.close()

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(push, range(len(layers))))
    conn = reg.connect()
    push_monolithic(conn, args.repo, config, len(config), config_digest)
    put_manifest(conn, args.repo, args.tag, (config_digest, len(config)), list(zip(digests, map(len, layers))))
    print(f"{time.perf_counter() - start:.3f}")


def cmd_small_image(args):
    """Push a one-layer image for the manifest GET benchmark."""
    reg = Registry(args.registry)
    conn = reg.connect()
    layer = os.urandom(4096)
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    blobs = []
    for blob in (layer, config):
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        push_monolithic(conn, args.repo, blob, len(blob), digest)
        blobs.append((digest, len(blob)))
    put_manifest(conn, args.repo, args.tag, blobs[1], [blobs[0]])


def cmd_seed_images(args):
    """Push `images` one-tag images `<prefix>NN:v1`, each a base layer shared
    with the images of its group plus a layer of its own: the replication
    benchmark's set. Prints a JSON summary (logical and unique bytes)."""
    reg = Registry(args.registry)
    bases = [os.urandom(args.base_mib << 20) for _ in range(args.groups)]
    base_blobs = [("sha256:" + hashlib.sha256(b).hexdigest(), b) for b in bases]
    pushed_bases = set()
    logical = unique = 0
    conn = reg.connect()
    for i in range(args.images):
        repo = f"{args.prefix}{i:02d}"
        base_digest, base = base_blobs[i % args.groups]
        own = os.urandom(args.unique_mib << 20)
        own_digest = "sha256:" + hashlib.sha256(own).hexdigest()
        config = json.dumps({"architecture": "amd64", "os": "linux", "image": repo}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        # Every image pushes its base: the registry must hold it in each
        # repository, as after real pushes.
        for digest, blob in ((base_digest, base), (own_digest, own), (config_digest, config)):
            push_monolithic(conn, repo, blob, len(blob), digest)
        put_manifest(conn, repo, "v1", (config_digest, len(config)), [(base_digest, len(base)), (own_digest, len(own))])
        logical += len(base) + len(own) + len(config)
        unique += len(own) + len(config) + (0 if base_digest in pushed_bases else len(base))
        pushed_bases.add(base_digest)
    print(json.dumps({"images": args.images, "logical_bytes": logical, "unique_bytes": unique}))


def cmd_head_latency(args):
    """`count` sequential HEADs on one keep-alive connection; p50 and p99 in ms."""
    reg = Registry(args.registry)
    conn = reg.connect()
    path = f"/v2/{args.repo}/blobs/{args.digest}"
    headers = {"Authorization": AUTHORIZATION} if AUTHORIZATION else {}
    samples = []
    for _ in range(args.count):
        start = time.perf_counter()
        conn.request("HEAD", path, headers=headers)
        resp = conn.getresponse()
        resp.read()
        samples.append((time.perf_counter() - start) * 1000)
        if resp.status != 200:
            sys.exit(f"HEAD {path}: {resp.status}")
    samples.sort()
    q = statistics.quantiles(samples, n=100)
    print(json.dumps({"p50": round(q[49], 3), "p99": round(q[98], 3)}))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(required=True)

    s = sub.add_parser("push-blob", help="push a file as a blob; prints MB/s")
    s.add_argument("registry")
    s.add_argument("repo")
    s.add_argument("file")
    s.add_argument("digest")
    s.add_argument("--chunk", type=int, default=0, help="PATCH chunk size in bytes (0: monolithic PUT)")
    s.set_defaults(func=cmd_push_blob)

    s = sub.add_parser("push-image", help="push an image of random layers; prints seconds")
    s.add_argument("registry")
    s.add_argument("repo")
    s.add_argument("tag")
    s.add_argument("--layers", type=int, default=20)
    s.add_argument("--layer-mib", type=int, default=5)
    s.add_argument("--parallel", type=int, default=4)
    s.set_defaults(func=cmd_push_image)

    s = sub.add_parser("small-image", help="push a tiny image")
    s.add_argument("registry")
    s.add_argument("repo")
    s.add_argument("tag")
    s.set_defaults(func=cmd_small_image)

    s = sub.add_parser("seed-images", help="push images sharing base layers; prints a JSON summary")
    s.add_argument("registry")
    s.add_argument("prefix", help="repository name prefix, e.g. bench/img")
    s.add_argument("--images", type=int, default=50)
    s.add_argument("--groups", type=int, default=5, help="distinct base layers")
    s.add_argument("--base-mib", type=int, default=8)
    s.add_argument("--unique-mib", type=int, default=12)
    s.set_defaults(func=cmd_seed_images)

    s = sub.add_parser("head-latency", help="sequential blob HEADs; prints p50/p99 ms")
    s.add_argument("registry")
    s.add_argument("repo")
    s.add_argument("digest")
    s.add_argument("--count", type=int, default=2000)
    s.set_defaults(func=cmd_head_latency)

    s = sub.add_parser("sha256", help="digest of a file")
    s.add_argument("file")
    s.set_defaults(func=lambda a: print(sha256_file(a.file)))

    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
