#!/usr/bin/env python3
"""Builds, signs and submits intkey batches with the official Sawtooth Python SDK.

The transactions and batches are made the way third-party Sawtooth clients make them: headers
from ``sawtooth_sdk.protobuf``, signatures from ``sawtooth_signing`` (secp256k1 over SHA-256 of
the serialized header), payloads as intkey CBOR. The batch list is POSTed to a Sawtooth REST API
(``/batches``, ``application/octet-stream``), then ``/batch_statuses`` is polled until no batch is
PENDING or UNKNOWN, or the timeout passes.

Usage::

    submit.py --url http://127.0.0.1:8008 set:foo:10 inc:foo:5   # one batch, two transactions
    submit.py --url URL --separate dec:foo:100                    # one batch per transaction
    submit.py --out batches.bin set:foo:1                         # write the BatchList, no network

It prints one JSON object: the signer's public key, each transaction (id, verb, name, value,
address), each batch id, and the final statuses. Exit status: 0 when every batch reached
COMMITTED or INVALID (or was written with --out), 2 on timeout, 1 on errors.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.request

import cbor2
from sawtooth_sdk.protobuf.batch_pb2 import Batch, BatchHeader, BatchList
from sawtooth_sdk.protobuf.transaction_pb2 import Transaction, TransactionHeader
from sawtooth_signing import CryptoFactory, create_context
from sawtooth_signing.secp256k1 import Secp256k1PrivateKey

FAMILY_NAME = "intkey"
FAMILY_VERSION = "1.0"
NAMESPACE = hashlib.sha512(FAMILY_NAME.encode("utf-8")).hexdigest()[:6]
FINAL_STATUSES = ("COMMITTED", "INVALID")


def intkey_address(name):
    """The state address of an intkey name."""
    return NAMESPACE + hashlib.sha512(name.encode("utf-8")).hexdigest()[-64:]


def parse_op(text):
    """``verb:name:value`` -> (verb, name, value); the verb is not checked (the TP does)."""
    try:
        verb, name, value = text.split(":")
        return verb, name, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected VERB:NAME:VALUE (e.g. set:foo:10), got {!r}".format(text))


def make_transaction(signer, verb, name, value):
    payload = cbor2.dumps({"Verb": verb, "Name": name, "Value": value}, canonical=True)
    address = intkey_address(name)
    public_key = signer.get_public_key().as_hex()
    header = TransactionHeader(
        family_name=FAMILY_NAME,
        family_version=FAMILY_VERSION,
        inputs=[address],
        outputs=[address],
        signer_public_key=public_key,
        batcher_public_key=public_key,
        dependencies=[],
        payload_sha512=hashlib.sha512(payload).hexdigest(),
        nonce=os.urandom(16).hex(),
    ).SerializeToString()
    txn = Transaction(header=header, header_signature=signer.sign(header), payload=payload)
    info = {"id": txn.header_signature, "verb": verb, "name": name, "value": value,
            "address": address}
    return txn, info


def make_batch(signer, transactions):
    header = BatchHeader(
        signer_public_key=signer.get_public_key().as_hex(),
        transaction_ids=[t.header_signature for t in transactions],
    ).SerializeToString()
    return Batch(header=header, header_signature=signer.sign(header), transactions=transactions)


def http(method, url, body=None, content_type=None, timeout=30):
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        text = err.read().decode("utf-8", "replace")
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, {"error": text}


def wait_for_statuses(url, batch_ids, timeout):
    """Polls /batch_statuses (with the REST API's own wait) until every batch is final."""
    deadline = time.monotonic() + timeout
    statuses = []
    while True:
        remaining = deadline - time.monotonic()
        wait = max(1, min(5, int(remaining)))
        code, body = http(
            "GET", "{}/batch_statuses?id={}&wait={}".format(url, ",".join(batch_ids), wait),
            timeout=wait + 30)
        if code != 200:
            raise RuntimeError("GET /batch_statuses answered {}: {}".format(code, body))
        statuses = body["data"]
        if all(s["status"] in FINAL_STATUSES for s in statuses):
            return statuses, True
        if time.monotonic() >= deadline:
            return statuses, False
        time.sleep(0.1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ops", nargs="+", type=parse_op, metavar="VERB:NAME:VALUE")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="REST API base URL, e.g. http://127.0.0.1:8008")
    target.add_argument("--out", help="write the serialized BatchList here instead of posting")
    parser.add_argument("--private-key", help="secp256k1 private key, 64 hex (default: random)")
    parser.add_argument("--separate", action="store_true", help="one batch per transaction")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (60)")
    args = parser.parse_args(argv)

    context = create_context("secp256k1")
    key = (Secp256k1PrivateKey.from_hex(args.private_key) if args.private_key
           else context.new_random_private_key())
    signer = CryptoFactory(context).new_signer(key)

    made = [make_transaction(signer, *op) for op in args.ops]
    groups = [[t] for t, _ in made] if args.separate else [[t for t, _ in made]]
    batches = [make_batch(signer, group) for group in groups]
    batch_list = BatchList(batches=batches).SerializeToString()
    report = {
        "signer_public_key": signer.get_public_key().as_hex(),
        "transactions": [info for _, info in made],
        "batch_ids": [b.header_signature for b in batches],
    }

    if args.out:
        with open(args.out, "wb") as out:
            out.write(batch_list)
        report["out"] = args.out
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0

    url = args.url.rstrip("/")
    code, body = http("POST", url + "/batches", batch_list, "application/octet-stream")
    report["submit"] = {"status": code, "body": body}
    if code != 202:
        print(json.dumps(report, indent=2, sort_keys=True))
        print("POST /batches answered {}".format(code), file=sys.stderr)
        return 1
    statuses, final = wait_for_statuses(url, report["batch_ids"], args.timeout)
    report["statuses"] = statuses
    print(json.dumps(report, indent=2, sort_keys=True))
    if not final:
        print("timed out after {}s with batches not final".format(args.timeout), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
