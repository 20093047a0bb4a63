"""The shapes every part of hookline takes a name, a text or a URL in, said once.

The API's models, the dashboard's forms and the OpenAPI document derive from these (the
limits are named constants so that a form's message can quote them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

NAME_MAX = 200
#: What a name (an event type, a subscriber's uid, a tenant's) may be made of.
NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"
NAME = re.compile(NAME_PATTERN)
TEXT_MAX = 1000
URL_MAX = 2048

Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX, pattern=NAME_PATTERN)]
ID_MAX = 200
#: An id given to look something up (an endpoint's, an event's): whatever is sent is looked
#: for, up to a length no id reaches.
IdRef = Annotated[str, Field(max_length=ID_MAX)]
Text = Annotated[str, Field(max_length=TEXT_MAX)]
Url = Annotated[str, Field(min_length=1, max_length=URL_MAX)]


def _whole(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: On an integer field: a JSON number with nothing after the point (``2.0``) is the
#: integer it equals, as JSON Schema reads it (strict validation would refuse a float).
WHOLE = BeforeValidator(_whole)


@dataclass(frozen=True)
class Declared:
    """On a string field: a pattern the API document declares while the kernel checks the
    value itself, with a message for each way it can be wrong (a URL's scheme, a secret's
    length) rather than "should match pattern"."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        declared = handler(schema)
        declared["pattern"] = self.pattern
        return declared


def is_name(value: str) -> bool:
    """Whether ``value`` is a valid :data:`Name`."""
    return 0 < len(value) <= NAME_MAX and NAME.match(value) is not None
