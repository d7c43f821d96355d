"""The tag roles are named in Python once (metadata.ROLES) and copied once in the frontend
(frontend/state.js ROLES, which orders the tab's charts): the two must agree."""

import json
import re
from importlib import resources

from tb_batchavg import metadata


def test_frontend_roles_are_metadata_roles():
    source = resources.files("tb_batchavg.frontend").joinpath("state.js").read_text()
    [listed] = re.findall(r"^export const ROLES = (\[[^\]]*\]);", source, re.M)
    assert tuple(json.loads(listed.replace("'", '"'))) == metadata.ROLES
