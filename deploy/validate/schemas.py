"""Every rendered object against the Kubernetes JSON schemas shipped by ``kubernetes-validate``, strict
(unknown fields are errors), for Kubernetes ``KUBERNETES_VERSION``."""

from __future__ import annotations

import functools

import kubernetes_validate
import kubernetes_validate.utils

from deploy.validate.common import KUBERNETES_VERSION, Resource

# kubernetes-validate reads and parses its 1 MB definitions file again for every object; the schema
# files never change while we run, so remember them (a run goes from ~1 s to ~0.1 s per overlay).
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


def validate_schemas(resources: list[Resource]) -> None:
    for res in resources:
        try:
            kubernetes_validate.validate(res.obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(top)"
            raise res.fail(
                f"does not validate against Kubernetes {exc.version}: {where}: {exc.message}"
            ) from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise res.fail(exc.message) from None
