"""S3 client of `keel bench gateways`: the same boto3 code drives keel's S3 gateway and
Garage, so their figures compare like for like.

Usage: python3 bench_s3_driver.py ENDPOINT ACCESS_KEY SECRET BUCKET FILES SIZE SMALL PREFIX
Prints one JSON object: per phase, bytes, ops, seconds and per-op latencies (ms).
Exits 1 if a read returns other bytes than were written (a benchmark fails only then).
"""

import hashlib
import json
import os
import sys
import time

import boto3
from botocore.config import Config


def main():
    endpoint, key, secret, bucket = sys.argv[1:5]
    files, size, small = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    prefix = sys.argv[8]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 10, "mode": "standard"},
            # No checksum trailers: not every server takes them, and both are measured
            # with the same setting.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    out = {}

    def phase(name, ops):
        lat = []
        moved = 0
        start = time.monotonic()
        for op in ops:
            t = time.monotonic()
            moved += op()
            lat.append((time.monotonic() - t) * 1000.0)
        out[name] = {
            "bytes": moved,
            "ops": len(lat),
            "seconds": time.monotonic() - start,
            "latencies_ms": lat,
        }

    bodies = [os.urandom(size) for _ in range(files)]
    digests = [hashlib.md5(b).hexdigest() for b in bodies]

    def put(i, body):
        def op():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/large/{i}", Body=body)
            return len(body)

        return op

    def get(i):
        def op():
            data = s3.get_object(Bucket=bucket, Key=f"{prefix}/large/{i}")["Body"].read()
            if hashlib.md5(data).hexdigest() != digests[i]:
                print(f"wrong bytes read back for {prefix}/large/{i}", file=sys.stderr)
                sys.exit(1)
            return len(data)

        return op

    phase("write", [put(i, b) for i, b in enumerate(bodies)])
    phase("read_cold", [get(i) for i in range(files)])
    phase("read_warm", [get(i) for i in range(files)])

    small_body = os.urandom(4096)

    def small_put(i):
        def op():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/small/{i}", Body=small_body)
            return len(small_body)

        return op

    def small_get(i):
        def op():
            data = s3.get_object(Bucket=bucket, Key=f"{prefix}/small/{i}")["Body"].read()
            if data != small_body:
                print(f"wrong bytes read back for {prefix}/small/{i}", file=sys.stderr)
                sys.exit(1)
            return len(data)

        return op

    def small_head(i):
        def op():
            s3.head_object(Bucket=bucket, Key=f"{prefix}/small/{i}")
            return 0

        return op

    phase("small_put", [small_put(i) for i in range(small)])
    phase("small_get", [small_get(i) for i in range(small)])
    phase("small_head", [small_head(i) for i in range(small)])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
