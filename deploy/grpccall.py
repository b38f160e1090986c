"""A tiny reflection-only gRPC client for the walk-through and for operators:

    python -m deploy.grpccall HOST:PORT package.Service/Method '{"json": "request"}'
    python -m deploy.grpccall HOST:PORT list                 # services and their methods

It knows nothing of govhub's protos: it asks the server (gRPC server reflection) for them.
"""

from __future__ import annotations

import json
import sys

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    target, what = argv[0], argv[1]
    with grpc.insecure_channel(target) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(db)
        try:
            if what == "list":
                for service in db.get_services():
                    print(service)
                    for method in pool.FindServiceByName(service).methods:
                        print(f"  {method.name}")
                return 0
            service_name, _, method_name = what.partition("/")
            method = pool.FindServiceByName(service_name).FindMethodByName(method_name)
        except grpc.RpcError as err:
            print(f"grpccall: {target}: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        except KeyError:
            print(f"grpccall: {what}: no such service or method", file=sys.stderr)
            return 2
        request = json_format.Parse(
            argv[2] if len(argv) > 2 else "{}", message_factory.GetMessageClass(method.input_type)()
        )
        response_type = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service_name}/{method_name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString,
        )
        try:
            reply = call(request, timeout=10)
        except grpc.RpcError as err:
            print(f"grpccall: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        print(
            json.dumps(
                json_format.MessageToDict(reply, preserving_proto_field_name=True),
                ensure_ascii=False,
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
