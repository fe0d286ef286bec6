#!/usr/bin/env python3
"""Usage: python grpc_client.py TARGET KEY RAW_DATA_HEX PAYOUT_ID [REFUSED_RAW_DATA_HEX]

A plain grpcio client with none of tron-signer's code: it checks the standard health
service, learns the API from server reflection, then calls ListKeys and Sign with messages
built from the reflected descriptors. Prints one JSON object.

With TLS_CA, TLS_CERT and TLS_KEY set (PEM files), it connects over mutual TLS: the signer's
certificate must chain to TLS_CA and name "localhost"; TLS_CERT/TLS_KEY are the client's.
"""
import json
import os
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "tronsigner.v1.Signer"


def main():
    target, key, raw_hex, payout = sys.argv[1:5]
    refused_hex = sys.argv[5] if len(sys.argv) > 5 else None
    # grpc-core sends the escaped socket path as :authority on unix: targets, which HTTP/2
    # servers that validate authorities (hyper, which the signer uses) reject.
    options = [("grpc.default_authority", "localhost")] if target.startswith("unix:") else []
    if os.environ.get("TLS_CA"):
        def read(var):
            with open(os.environ[var], "rb") as f:
                return f.read()

        creds = grpc.ssl_channel_credentials(
            root_certificates=read("TLS_CA"),
            private_key=read("TLS_KEY"),
            certificate_chain=read("TLS_CERT"),
        )
        options.append(("grpc.ssl_target_name_override", "localhost"))
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=SERVICE), timeout=10
    )
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName(SERVICE)

    def call(method_name, fields):
        method = service.FindMethodByName(method_name)
        req_cls = message_factory.GetMessageClass(method.input_type)
        resp_cls = message_factory.GetMessageClass(method.output_type)
        rpc = channel.unary_unary(
            f"/{SERVICE}/{method_name}",
            request_serializer=req_cls.SerializeToString,
            response_deserializer=resp_cls.FromString,
        )
        return rpc(req_cls(**fields), timeout=10)

    out = {
        "health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status),
        "methods": sorted(m.name for m in service.methods),
        "keys": [k.address for k in call("ListKeys", {}).keys],
    }
    signed = call("Sign", {"key": key, "raw_data": bytes.fromhex(raw_hex), "payout_id": payout})
    out["txid"] = signed.txid.hex()
    out["signature"] = signed.signature.hex()
    out["allowed"] = signed.decision.allowed
    if refused_hex:
        try:
            call("Sign", {"key": key, "raw_data": bytes.fromhex(refused_hex), "payout_id": payout + "-r"})
            out["refused"] = None
        except grpc.RpcError as err:
            meta = dict(err.trailing_metadata() or ())
            out["refused"] = {"code": err.code().name, "reason_code": meta.get("reason-code")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
