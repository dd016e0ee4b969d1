#!/usr/bin/env python3
"""Expands a SAM template into plain CloudFormation, offline, with aws-sam-translator.

cfn-lint 1.x only lints what it can see: on a SAM template it checks the serverless resources
loosely, so a bad runtime, a !Ref to a missing resource or a broken event source slips through.
Running the same transform CloudFormation runs at deploy time, and linting its output too,
catches those. Usage:

    expand-sam.py infra/template.yaml > .tmp/template.expanded.json

No AWS account is touched: the translator only needs a region name (for ARNs it builds) and a
way to look up the ARNs of AWS managed policies, which is answered here from the names alone.
Parameters keep their template defaults.
"""

import json
import os
import sys

# The translator reads the region from the environment; any region gives the same shape.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from cfnlint.decode import decode  # noqa: E402  (after the region is set)
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402


class OfflinePolicyLoader(ManagedPolicyLoader):
    """Answers managed-policy ARN look-ups without calling IAM.

    The translator asks for the ARN of each managed policy named in a function's `Policies`
    (and of the Lambda basic execution role). AWS managed policies live at a fixed path, so the
    ARN follows from the name; a policy that is not AWS managed would be an ARN already.
    """

    def __init__(self):
        super().__init__(iam_client=None)

    def load(self):
        return _ManagedPolicies()


class _ManagedPolicies(dict):
    def __missing__(self, name):
        return f"arn:aws:iam::aws:policy/{name}"

    def __contains__(self, name):
        return True


def package_locally(template):
    """Stands in for `sam package`: a local CodeUri becomes an S3 location.

    The transform accepts only S3 code locations, which `sam build`/`sam deploy` put there after
    uploading the build. Which bucket does not matter to any check made on the result.
    """
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.setdefault("Properties", {})
        if isinstance(props.get("CodeUri", "."), str) and not props.get("CodeUri", "").startswith("s3://"):
            props["CodeUri"] = f"s3://meterflow-offline-expansion/{name}.zip"


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} TEMPLATE", file=sys.stderr)
        return 2
    # cfn-lint's decoder understands the short tags (!Ref, !GetAtt, !Sub, ...) and reports
    # YAML problems with line numbers.
    template, matches = decode(argv[1])
    if matches:
        for m in matches:
            print(m, file=sys.stderr)
        return 1
    package_locally(template)
    expanded = transform(template, {}, OfflinePolicyLoader())
    json.dump(expanded, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
