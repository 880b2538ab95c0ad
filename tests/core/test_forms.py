"""Domain errors shown on forms (core/forms.py)."""

from django import forms
from django.core.exceptions import ValidationError

from core.forms import add_validation_errors


class NameForm(forms.Form):
    name = forms.CharField()


def test_a_field_keyed_error_goes_under_its_field_and_an_unknown_field_above_the_form():
    form = NameForm({"name": "x"})
    assert form.is_valid()
    add_validation_errors(form, ValidationError({"name": "Taken.", "slug": "Not a slug."}))
    assert form.errors["name"] == ["Taken."]
    assert form.non_field_errors() == ["Not a slug."]


def test_a_plain_error_goes_above_the_form():
    form = NameForm({"name": "x"})
    assert form.is_valid()
    add_validation_errors(form, ValidationError(["One.", "Two."]))
    assert form.non_field_errors() == ["One.", "Two."]
