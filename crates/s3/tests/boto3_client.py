"""Drives keel's S3 gateway with boto3 (a client nobody here wrote).

Run by tests/clients.rs with the endpoint and keys in the environment:
KEEL_S3_ENDPOINT, KEEL_S3_KEY, KEEL_S3_SECRET (full access), KEEL_S3_RO_KEY /
KEEL_S3_RO_SECRET (read-only), KEEL_S3_SCOPED_KEY / KEEL_S3_SCOPED_SECRET (limited to
the bucket "scoped"). Exits non-zero with the failing check on stderr.
"""

import hashlib
import http.client
import os
import sys
import urllib.parse

import boto3
import botocore
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT = os.environ["KEEL_S3_ENDPOINT"]
REGION = "us-east-1"


def client(key, secret):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=REGION,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            signature_version="s3v4",
        ),
    )


s3 = client(os.environ["KEEL_S3_KEY"], os.environ["KEEL_S3_SECRET"])


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)


def expect_error(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"{fn.__name__} {kwargs.get('Key', '')[:40]!r}: expected {code}, got {got} ({e})")
        return e
    check(False, f"{fn.__name__}: expected {code}, but it succeeded")


def raw_signed(method, path, key, secret, body=b"", sign_path=None):
    """A SigV4-signed request sent byte for byte (no URL normalization), as a
    misbehaving client would."""
    url = ENDPOINT + (sign_path or path)
    req = AWSRequest(method=method, url=url, data=body)
    req.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(key, secret), "s3", REGION).add_auth(req)
    u = urllib.parse.urlsplit(ENDPOINT)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", u.netloc)
    for k, v in req.headers.items():
        conn.putheader(k, v)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data.decode(errors="replace")


def main():
    # ---- buckets ----
    s3.create_bucket(Bucket="data")
    s3.create_bucket(Bucket="scoped")
    expect_error("BucketAlreadyOwnedByYou", s3.create_bucket, Bucket="data")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    check({"data", "scoped"} <= set(names), f"list_buckets: {names}")
    check("Odd_Name" not in names, f"a volume that is not a bucket name is listed: {names}")
    s3.head_bucket(Bucket="data")
    # A file written at offsets (as NFS writes it): readable, with the derived ETag.
    g = s3.get_object(Bucket="nfs", Key="from-nfs/file")
    check(g["Body"].read() == b"written over nfs", "nfs-written file body")
    check(g["ETag"] == os.environ["KEEL_S3_NFS_ETAG"], f"nfs-written etag {g['ETag']}")
    r = s3.list_objects_v2(Bucket="nfs")
    check([(o["Key"], o["ETag"], o["Size"]) for o in r["Contents"]]
          == [("from-nfs/file", os.environ["KEEL_S3_NFS_ETAG"], 16)], f"nfs listing {r['Contents']}")
    expect_error("404", s3.head_bucket, Bucket="nothere")
    expect_error("InvalidBucketName", s3.create_bucket, Bucket="Bad_Name")
    expect_error("InvalidBucketName", s3.list_objects_v2, Bucket="-bad")

    # ---- put / get / range / head / metadata ----
    body = bytes(range(256)) * 1000
    r = s3.put_object(
        Bucket="data",
        Key="dir/sub/obj.bin",
        Body=body,
        ContentType="application/x-test",
        Metadata={"color": "blue", "Shape": "round"},
    )
    check(r["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), f"put etag {r['ETag']}")
    g = s3.get_object(Bucket="data", Key="dir/sub/obj.bin")
    check(g["Body"].read() == body, "get body")
    check(g["ContentType"] == "application/x-test", f"content type {g['ContentType']}")
    check(g["Metadata"] == {"color": "blue", "shape": "round"}, f"metadata {g['Metadata']}")
    check(g["ETag"] == r["ETag"], "get etag")
    rg = s3.get_object(Bucket="data", Key="dir/sub/obj.bin", Range="bytes=1000-1999")
    check(rg["Body"].read() == body[1000:2000], "range body")
    check(rg["ContentRange"] == f"bytes 1000-1999/{len(body)}", f"range {rg['ContentRange']}")
    check(rg["ResponseMetadata"]["HTTPStatusCode"] == 206, "range status")
    sfx = s3.get_object(Bucket="data", Key="dir/sub/obj.bin", Range="bytes=-10")
    check(sfx["Body"].read() == body[-10:], "suffix range")
    expect_error("InvalidRange", s3.get_object, Bucket="data", Key="dir/sub/obj.bin",
                 Range=f"bytes={len(body)}-")
    h = s3.head_object(Bucket="data", Key="dir/sub/obj.bin")
    check(h["ContentLength"] == len(body), "head length")
    check(h["Metadata"] == {"color": "blue", "shape": "round"}, "head metadata")
    # Preconditions.
    expect_error("304", s3.get_object, Bucket="data", Key="dir/sub/obj.bin", IfNoneMatch=r["ETag"])
    expect_error("PreconditionFailed", s3.get_object, Bucket="data", Key="dir/sub/obj.bin", IfMatch='"0"')
    expect_error("412", s3.head_object, Bucket="data", Key="dir/sub/obj.bin", IfMatch='"0"')
    check(s3.get_object(Bucket="data", Key="dir/sub/obj.bin", IfMatch=r["ETag"])["Body"].read() == body, "if-match")
    expect_error("304", s3.head_object, Bucket="data", Key="dir/sub/obj.bin", IfModifiedSince=h["LastModified"])
    expect_error("NotImplemented", s3.put_object, Bucket="data", Key="cond", Body=b"x", IfNoneMatch="*")
    expect_error("NoSuchKey", s3.get_object, Bucket="data", Key="nope")
    expect_error("404", s3.head_object, Bucket="data", Key="nope")
    # A key that names a directory is no object.
    expect_error("NoSuchKey", s3.get_object, Bucket="data", Key="dir/sub")
    # A PUT under a key that is an object.
    expect_error("ParentIsObject", s3.put_object, Bucket="data", Key="dir/sub/obj.bin/x",
                 Body=b"x")
    expect_error("KeyIsPrefix", s3.put_object, Bucket="data", Key="dir/sub", Body=b"x")
    expect_error("NoSuchBucket", s3.put_object, Bucket="nothere", Key="k", Body=b"x")
    expect_error("BadDigest", s3.put_object, Bucket="data", Key="bad-md5", Body=b"abc",
                 ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    expect_error("NoSuchKey", s3.get_object, Bucket="data", Key="bad-md5")
    s3.put_object(Bucket="data", Key="empty", Body=b"")
    check(s3.get_object(Bucket="data", Key="empty")["Body"].read() == b"", "empty object")

    # ---- listings ----
    keys = [f"list/{d}/{i:03d}" for d in ("a", "b") for i in range(7)]
    keys += [f"list/top{i}" for i in range(5)] + ["list-sibling", "list/a-x"]
    for k in keys:
        s3.put_object(Bucket="data", Key=k, Body=k.encode())
    want = sorted(k for k in keys if k.startswith("list/"))
    for page_size in (1, 3, 1000):
        got = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket="data", Prefix="list/", PaginationConfig={"PageSize": page_size}
        ):
            got += [o["Key"] for o in page.get("Contents", [])]
        check(got == want, f"v2 flat page {page_size}: {got}")
        got, prefixes = [], []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket="data", Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": page_size}
        ):
            got += [o["Key"] for o in page.get("Contents", [])]
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        check(prefixes == ["list/a/", "list/b/"], f"v2 prefixes {page_size}: {prefixes}")
        check(got == ["list/a-x"] + [f"list/top{i}" for i in range(5)], f"v2 delim {page_size}: {got}")
        got, prefixes = [], []
        for page in s3.get_paginator("list_objects").paginate(
            Bucket="data", Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": page_size}
        ):
            got += [o["Key"] for o in page.get("Contents", [])]
            prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        check(prefixes == ["list/a/", "list/b/"], f"v1 prefixes {page_size}: {prefixes}")
        check(got == ["list/a-x"] + [f"list/top{i}" for i in range(5)], f"v1 delim {page_size}: {got}")
        got = []
        for page in s3.get_paginator("list_objects").paginate(
            Bucket="data", Prefix="list/", PaginationConfig={"PageSize": page_size}
        ):
            got += [o["Key"] for o in page.get("Contents", [])]
        check(got == want, f"v1 flat page {page_size}: {got}")
    r = s3.list_objects_v2(Bucket="data", Prefix="list/a/", StartAfter="list/a/004")
    check([o["Key"] for o in r["Contents"]] == ["list/a/005", "list/a/006"], "start-after")
    r = s3.list_objects_v2(Bucket="data", Prefix="list/", MaxKeys=2)
    check(r["IsTruncated"] and r["KeyCount"] == 2, "max-keys")
    expect_error("InvalidArgument", s3.list_objects_v2, Bucket="data", ContinuationToken="zz")

    # ---- copy ----
    c = s3.copy_object(Bucket="data", Key="copies/c1", CopySource={"Bucket": "data", "Key": "dir/sub/obj.bin"})
    check(c["CopyObjectResult"]["ETag"] == h["ETag"], "copy etag")
    g = s3.get_object(Bucket="data", Key="copies/c1")
    check(g["Body"].read() == body and g["Metadata"] == {"color": "blue", "shape": "round"}, "copy body+meta")
    s3.copy_object(
        Bucket="scoped", Key="c2", CopySource="data/dir/sub/obj.bin",
        MetadataDirective="REPLACE", Metadata={"k": "v"}, ContentType="text/plain",
    )
    h2 = s3.head_object(Bucket="scoped", Key="c2")
    check(h2["Metadata"] == {"k": "v"} and h2["ContentType"] == "text/plain", f"copy replace {h2}")
    expect_error("InvalidRequest", s3.copy_object, Bucket="data", Key="copies/c1",
                 CopySource="data/copies/c1")
    expect_error("NoSuchKey", s3.copy_object, Bucket="data", Key="x", CopySource="data/nope")

    # ---- delete ----
    s3.delete_object(Bucket="data", Key="copies/c1")
    s3.delete_object(Bucket="data", Key="copies/c1")  # idempotent
    r = s3.list_objects_v2(Bucket="data", Prefix="copies/")
    check(r["KeyCount"] == 0, "deleted key leaves no empty prefix")
    d = s3.delete_objects(
        Bucket="data",
        Delete={"Objects": [{"Key": k} for k in keys] + [{"Key": "a/../b"}]},
    )
    check(len(d["Deleted"]) == len(keys), f"delete_objects deleted {len(d.get('Deleted', []))}")
    check([e["Code"] for e in d.get("Errors", [])] == ["InvalidArgument"], f"delete_objects errors {d.get('Errors')}")
    check(s3.list_objects_v2(Bucket="data", Prefix="list")["KeyCount"] == 0, "all deleted")
    expect_error("BucketNotEmpty", s3.delete_bucket, Bucket="data")

    # ---- multipart, explicitly ----
    mp = s3.create_multipart_upload(Bucket="data", Key="mp/big", ContentType="video/x",
                                    Metadata={"m": "1"})
    uid = mp["UploadId"]
    p1 = os.urandom(5 * 1024 * 1024)
    p2 = os.urandom(5 * 1024 * 1024)
    p3 = b"tail" * 1000
    # Uploaded out of order, one part twice (the last one wins).
    for n, data in ((2, p2), (1, b"overwritten"), (1, p1), (3, p3)):
        e = s3.upload_part(Bucket="data", Key="mp/big", UploadId=uid, PartNumber=n, Body=data)["ETag"]
        check(e == '"%s"' % hashlib.md5(data).hexdigest(), f"part etag {n}")
    lp = s3.list_parts(Bucket="data", Key="mp/big", UploadId=uid)
    check([p["PartNumber"] for p in lp["Parts"]] == [1, 2, 3], f"list_parts {lp['Parts']}")
    check(s3.list_objects_v2(Bucket="data", Prefix="")["KeyCount"] == 2, "uploads hidden")
    parts = [{"PartNumber": n, "ETag": '"%s"' % hashlib.md5(d).hexdigest()} for n, d in ((1, p1), (2, p2), (3, p3))]
    expect_error("InvalidPartOrder", s3.complete_multipart_upload, Bucket="data", Key="mp/big",
                 UploadId=uid, MultipartUpload={"Parts": [parts[1], parts[0]]})
    expect_error("InvalidPart", s3.complete_multipart_upload, Bucket="data", Key="mp/big",
                 UploadId=uid, MultipartUpload={"Parts": [parts[0], {"PartNumber": 2, "ETag": '"00"'}]})
    done = s3.complete_multipart_upload(Bucket="data", Key="mp/big", UploadId=uid,
                                        MultipartUpload={"Parts": parts})
    want_etag = '"%s-3"' % hashlib.md5(b"".join(hashlib.md5(d).digest() for d in (p1, p2, p3))).hexdigest()
    check(done["ETag"] == want_etag, f"multipart etag {done['ETag']} != {want_etag}")
    g = s3.get_object(Bucket="data", Key="mp/big")
    check(g["Body"].read() == p1 + p2 + p3, "multipart body")
    check(g["ETag"] == want_etag and g["ContentType"] == "video/x" and g["Metadata"] == {"m": "1"}, "multipart head")
    expect_error("NoSuchUpload", s3.upload_part, Bucket="data", Key="mp/big", UploadId=uid, PartNumber=1, Body=b"x")
    expect_error("NoSuchUpload", s3.list_parts, Bucket="data", Key="mp/big", UploadId="../../etc")
    # Small parts: refused unless last; then aborted.
    ab = s3.create_multipart_upload(Bucket="data", Key="mp/aborted")["UploadId"]
    e1 = s3.upload_part(Bucket="data", Key="mp/aborted", UploadId=ab, PartNumber=1, Body=b"a")["ETag"]
    e2 = s3.upload_part(Bucket="data", Key="mp/aborted", UploadId=ab, PartNumber=2, Body=b"b")["ETag"]
    expect_error("EntityTooSmall", s3.complete_multipart_upload, Bucket="data", Key="mp/aborted", UploadId=ab,
                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    expect_error("NoSuchUpload", s3.upload_part, Bucket="data", Key="mp/other", UploadId=ab, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket="data", Key="mp/aborted", UploadId=ab)
    expect_error("NoSuchUpload", s3.list_parts, Bucket="data", Key="mp/aborted", UploadId=ab)
    expect_error("NoSuchKey", s3.get_object, Bucket="data", Key="mp/aborted")

    # ---- keys that are not paths ----
    for bad in ("/lead", "a//b", ".keel-uploads/x", "./x", "x/./y", "a" * 1025):
        code = "KeyTooLongError" if len(bad) > 1024 else "InvalidArgument"
        expect_error(code, s3.put_object, Bucket="data", Key=bad, Body=b"x")
    for path in ("/data/a/../escape", "/data/../scoped/c2", "/data/x/..", "/data/a/./b"):
        status, text = raw_signed("PUT", path, os.environ["KEEL_S3_KEY"], os.environ["KEEL_S3_SECRET"], b"x")
        check(status == 400 and "<Code>InvalidArgument</Code>" in text, f"traversal {path}: {status} {text}")
    # Dots sent percent-encoded, signed either way: refused too (the signature is over
    # one form, the key is the decoded one).
    for signed in ("/data/%2E%2E/scoped/c3", "/data/../scoped/c3"):
        status, text = raw_signed("PUT", "/data/%2E%2E/scoped/c3", os.environ["KEEL_S3_KEY"],
                                  os.environ["KEEL_S3_SECRET"], b"x", sign_path=signed)
        check(status in (400, 403) and ("InvalidArgument" in text or "SignatureDoesNotMatch" in text),
              f"encoded traversal signed as {signed}: {status} {text}")
    expect_error("NoSuchKey", s3.get_object, Bucket="scoped", Key="c3")
    status, text = raw_signed("GET", "/data/a/../mp/big", os.environ["KEEL_S3_KEY"], os.environ["KEEL_S3_SECRET"])
    check(status == 400 and "InvalidArgument" in text, f"traversal GET: {status} {text}")
    check(s3.get_object(Bucket="scoped", Key="c2")["ContentLength"] == len(body), "scoped/c2 untouched")

    # ---- credentials ----
    bad_secret = client(os.environ["KEEL_S3_KEY"], "not-the-secret")
    expect_error("SignatureDoesNotMatch", bad_secret.list_buckets)
    expect_error("SignatureDoesNotMatch", bad_secret.put_object, Bucket="data", Key="k", Body=b"x")
    unknown = client("NOSUCHKEY", "whatever")
    expect_error("InvalidAccessKeyId", unknown.get_object, Bucket="data", Key="mp/big")
    ro = client(os.environ["KEEL_S3_RO_KEY"], os.environ["KEEL_S3_RO_SECRET"])
    check(ro.get_object(Bucket="data", Key="mp/big")["ContentLength"] == len(p1 + p2 + p3), "ro read")
    expect_error("AccessDenied", ro.put_object, Bucket="data", Key="ro", Body=b"x")
    expect_error("AccessDenied", ro.delete_object, Bucket="data", Key="mp/big")
    expect_error("AccessDenied", ro.create_bucket, Bucket="robucket")
    sc = client(os.environ["KEEL_S3_SCOPED_KEY"], os.environ["KEEL_S3_SCOPED_SECRET"])
    sc.put_object(Bucket="scoped", Key="mine", Body=b"ok")
    expect_error("AccessDenied", sc.get_object, Bucket="data", Key="mp/big")
    expect_error("AccessDenied", sc.list_objects_v2, Bucket="data")
    expect_error("AccessDenied", sc.copy_object, Bucket="scoped", Key="stolen", CopySource="data/mp/big")
    check([b["Name"] for b in sc.list_buckets()["Buckets"]] == ["scoped"], "scoped list_buckets")

    # ---- still serving ----
    check(s3.get_object(Bucket="data", Key="mp/big")["ContentLength"] == len(p1 + p2 + p3), "still serving")
    s3.delete_object(Bucket="scoped", Key="mine")
    s3.delete_object(Bucket="scoped", Key="c2")
    s3.delete_bucket(Bucket="scoped")
    expect_error("NoSuchBucket", s3.list_objects_v2, Bucket="scoped")
    print("boto3: all checks passed")


if __name__ == "__main__":
    main()
