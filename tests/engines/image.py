#!/usr/bin/env python3
"""Build a small busybox image as an archive every engine here can load.

The archive is an OCI image layout (oci-layout, index.json, blobs/) that also carries
Docker's manifest.json, pointing at the same blobs: `podman load`, `docker load` (20.10
reads only manifest.json) and `ctr image import` all accept it. No registry is needed.

usage: image.py BUSYBOX OUT.tar NAME:TAG [--cmd=JSON] [PATH_IN_IMAGE=FILE ...]
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time


def add_bytes(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def layer(busybox, extra):
    """The root filesystem: busybox and its applets, users, and the usual directories."""
    applets = subprocess.run(
        [busybox, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def directory(name, mode=0o755):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)

        for d in ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "proc", "sys",
                  "dev", "root", "home", "var", "run"]:
            directory(d)
        directory("tmp", 0o1777)
        with open(busybox, "rb") as f:
            add_bytes(tar, "bin/busybox", f.read(), 0o755)
        for path in applets:
            if path == "bin/busybox":
                continue
            info = tarfile.TarInfo(path)
            info.type = tarfile.SYMTYPE
            info.linkname = "/bin/busybox"
            tar.addfile(info)
        add_bytes(tar, "etc/passwd",
                  b"root:x:0:0:root:/root:/bin/sh\n"
                  b"app:x:1000:1000:app:/home:/bin/sh\n"
                  b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        for dest, src in extra:
            with open(src, "rb") as f:
                add_bytes(tar, dest.lstrip("/"), f.read(), 0o755)
        add_bytes(tar, "etc/group", b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n")
    return buf.getvalue()


def main():
    busybox, out, ref = sys.argv[1:4]
    cmd = ["sh"]
    extra = []
    for arg in sys.argv[4:]:
        if arg.startswith("--cmd="):
            cmd = json.loads(arg[len("--cmd="):])
        else:
            extra.append(arg.split("=", 1))
    name, tag = ref.rsplit(":", 1)
    blobs = {}

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": "sha256:" + digest, "size": len(data)}

    layer_desc = blob(layer(busybox, extra))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
        "history": [{"created_by": "tests/engines/image.py"}],
    }
    config_desc = blob(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(config_desc, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [dict(layer_desc, mediaType="application/vnd.oci.image.layer.v1.tar")],
    }
    manifest_desc = blob(json.dumps(manifest).encode())
    full = name if "/" in name else "docker.io/library/" + name
    index = {
        "schemaVersion": 2,
        "manifests": [dict(manifest_desc,
                           mediaType="application/vnd.oci.image.manifest.v1+json",
                           annotations={"io.containerd.image.name": f"{full}:{tag}",
                                        "org.opencontainers.image.ref.name": tag})],
    }
    docker = [{
        "Config": "blobs/sha256/" + config_desc["digest"][7:],
        "RepoTags": [ref],
        "Layers": ["blobs/sha256/" + layer_desc["digest"][7:]],
    }]
    with tarfile.open(out, "w") as tar:
        add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_bytes(tar, "index.json", json.dumps(index).encode())
        add_bytes(tar, "manifest.json", json.dumps(docker).encode())
        for digest, data in blobs.items():
            add_bytes(tar, f"blobs/sha256/{digest}", data)


if __name__ == "__main__":
    main()
