"""Form helpers shared by the apps' views."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError


def add_validation_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a domain ValidationError on the form: under its field where the form has one, else above it.

    (`getattr(error, "error_dict", {"__all__": error.error_list})` evaluates its default first, and a
    field-keyed error has no error_list: the view failed with a server error instead of showing it.)
    """
    by_field = error.error_dict if hasattr(error, "error_dict") else {"__all__": error.error_list}
    for field, errors in by_field.items():
        form.add_error(field if field in form.fields else None, errors)
