// A small two-platform OCI image layout (an index of linux/amd64 and
// linux/arm64 images), written from scratch so the suite needs no image
// download: skopeo pushes it with `oci:<dir>:<tag>`.
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

// One regular file in a ustar archive: a 512-byte header, the content padded
// to 512 bytes, and two empty blocks at the end.
function tarOneFile(name, content) {
  const header = Buffer.alloc(512, 0);
  const field = (offset, length, value) => header.write(value, offset, length, "ascii");
  field(0, 100, name);
  field(100, 8, "0000644\0");
  field(108, 8, "0000000\0");
  field(116, 8, "0000000\0");
  field(124, 12, content.length.toString(8).padStart(11, "0") + "\0");
  field(136, 12, "00000000000\0");
  field(156, 1, "0");
  field(257, 6, "ustar\0");
  field(263, 2, "00");
  header.fill(" ", 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512, 0);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024, 0)]);
}

/** Write the layout under `dir` with the index tagged `tag`; returns its digest. */
export function writeImageLayout(dir, tag) {
  const blobs = join(dir, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const put = (bytes) => {
    const hex = sha256(bytes);
    writeFileSync(join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const children = [];
  for (const architecture of ["amd64", "arm64"]) {
    const tar = tarOneFile("hello.txt", Buffer.from(`hello from ${architecture}\n`));
    const layer = put(gzipSync(tar));
    const config = put(Buffer.from(JSON.stringify({
      architecture,
      os: "linux",
      config: { Cmd: ["cat", "/hello.txt"] },
      rootfs: { type: "layers", diff_ids: [`sha256:${sha256(tar)}`] },
    })));
    const manifest = put(Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
    })));
    children.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      ...manifest,
      platform: { os: "linux", architecture },
    });
  }
  const index = put(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: children,
  })));
  writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(dir, "index.json"), JSON.stringify({
    schemaVersion: 2,
    manifests: [{
      mediaType: "application/vnd.oci.image.index.v1+json",
      ...index,
      annotations: { "org.opencontainers.image.ref.name": tag },
    }],
  }));
  return index.digest;
}
