#!/usr/bin/env python3
"""The intkey transaction family, written with the official Sawtooth Python SDK.

This is third-party Sawtooth code as a user of the real validator would write it: the processor
loop, the ZMQ transport and the state context all come from ``sawtooth_sdk.processor`` 1.2.5,
unchanged. The bcfl devnet must serve it exactly as a Sawtooth 1.2 validator does.

intkey (family ``intkey``, version ``1.0``):

- address: ``1cf126`` (the first 6 hex of sha512("intkey")) + the last 64 hex of sha512(name);
- payload: a CBOR map ``{"Verb": "set"|"inc"|"dec", "Name": text of at most 20 characters,
  "Value": integer in 0..=2**32-1}``;
- state: a CBOR map ``{name: value}`` per address (names whose addresses collide share it);
- ``set`` needs an absent name; ``inc``/``dec`` need a present one and keep the result in
  0..=2**32-1. Every violation is an InvalidTransaction with the messages of Sawtooth's intkey.

Run: ``intkey_tp.py --connect tcp://127.0.0.1:4004 [-v]``. SIGTERM or SIGINT unregisters and
exits.
"""

import argparse
import hashlib
import logging
import signal
import sys

import cbor2
from sawtooth_sdk.processor.core import TransactionProcessor
from sawtooth_sdk.processor.exceptions import InternalError, InvalidTransaction
from sawtooth_sdk.processor.handler import TransactionHandler

LOGGER = logging.getLogger("intkey_tp")

FAMILY_NAME = "intkey"
FAMILY_VERSION = "1.0"
NAMESPACE = hashlib.sha512(FAMILY_NAME.encode("utf-8")).hexdigest()[:6]
VERBS = ("set", "inc", "dec")
MAX_NAME_LENGTH = 20
MIN_VALUE = 0
MAX_VALUE = 2**32 - 1


def intkey_address(name):
    """The state address of an intkey name."""
    return NAMESPACE + hashlib.sha512(name.encode("utf-8")).hexdigest()[-64:]


def parse_payload(payload):
    """Decodes and validates a payload into ``(verb, name, value)``."""
    try:
        content = cbor2.loads(payload)
    except Exception as err:
        raise InvalidTransaction("Invalid payload serialization") from err
    if not isinstance(content, dict):
        raise InvalidTransaction("Invalid payload serialization")
    for key in ("Verb", "Name", "Value"):
        if key not in content:
            raise InvalidTransaction("{} is required".format(key))
    verb, name, value = content["Verb"], content["Name"], content["Value"]
    if verb not in VERBS:
        raise InvalidTransaction('Verb must be "set", "inc", or "dec"')
    if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
        raise InvalidTransaction(
            "Name must be a string of no more than {} characters".format(MAX_NAME_LENGTH))
    if (not isinstance(value, int) or isinstance(value, bool)
            or not MIN_VALUE <= value <= MAX_VALUE):
        raise InvalidTransaction(
            "Value must be an integer no less than {} and no greater than {}".format(
                MIN_VALUE, MAX_VALUE))
    return verb, name, value


def apply_verb(verb, name, value, state):
    """Returns the new state map after ``verb``, or raises InvalidTransaction."""
    if verb == "set":
        if name in state:
            raise InvalidTransaction(
                'Verb is "set", but already exists: Name: {}, Value {}'.format(name, state[name]))
        result = value
    else:
        if name not in state:
            raise InvalidTransaction('Verb is "{}" but name "{}" not in state'.format(verb, name))
        if verb == "inc":
            result = state[name] + value
            if result > MAX_VALUE:
                raise InvalidTransaction(
                    'Verb is "inc", but result would be greater than {}'.format(MAX_VALUE))
        else:
            result = state[name] - value
            if result < MIN_VALUE:
                raise InvalidTransaction(
                    'Verb is "dec", but result would be less than {}'.format(MIN_VALUE))
    updated = dict(state)
    updated[name] = result
    return updated


class IntkeyHandler(TransactionHandler):
    """The intkey family for the SDK's TransactionProcessor."""

    @property
    def family_name(self):
        return FAMILY_NAME

    @property
    def family_versions(self):
        return [FAMILY_VERSION]

    @property
    def namespaces(self):
        return [NAMESPACE]

    def apply(self, transaction, context):
        verb, name, value = parse_payload(transaction.payload)
        address = intkey_address(name)
        entries = context.get_state([address])
        if entries:
            try:
                state = cbor2.loads(entries[0].data)
            except Exception as err:
                raise InternalError("Failed to load state data") from err
            if not isinstance(state, dict):
                raise InternalError("Failed to load state data")
        else:
            state = {}
        updated = apply_verb(verb, name, value, state)
        LOGGER.info("%s %s %d: %s -> %d", verb, name, value, state.get(name), updated[name])
        if not context.set_state({address: cbor2.dumps(updated, canonical=True)}):
            raise InternalError("State error: {} was not set".format(address))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-C", "--connect", default="tcp://127.0.0.1:4004",
                        help="the validator's component endpoint")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr)

    # The SDK unregisters on KeyboardInterrupt; make SIGTERM take the same path.
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    processor = TransactionProcessor(url=args.connect)
    processor.add_handler(IntkeyHandler())
    LOGGER.info("intkey %s (namespace %s) connecting to %s",
                FAMILY_VERSION, NAMESPACE, args.connect)
    try:
        processor.start()
    finally:
        processor.stop()


if __name__ == "__main__":
    main()
