from __future__ import annotations

from typing import cast

from django import forms

from knowledge.documents import ACCEPTED_EXTENSIONS
from knowledge.models import AnswerPolicy, KnowledgeBase, KnowledgeSource, WhenUnsure


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(max_length=300, required=False)
    embedding_model = forms.ChoiceField(help_text="Embeds the passages and the customers' questions.")

    def __init__(self, *args, models=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["embedding_model"]).choices = [(m.slug, str(m)) for m in models]


class EmbeddingModelForm(forms.Form):
    embedding_model = forms.ChoiceField()

    def __init__(self, *args, models=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["embedding_model"]).choices = [(m.slug, str(m)) for m in models]


class SourceUploadForm(forms.Form):
    """Shown beside PasteForm: each keeps its own element ids (both have a title and a URL), so a label
    focuses its own form's field."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "upload_%s")
        super().__init__(*args, **kwargs)

    file = forms.FileField(help_text=f"{', '.join(ACCEPTED_EXTENSIONS)} — Q&A files need question and answer "
                                     "columns (CSV header or JSONL keys).")
    title = forms.CharField(max_length=200, required=False, help_text="Defaults to the document's title.")
    url = forms.URLField(label="URL", max_length=500, required=False, assume_scheme="https",
                         help_text="Optional: customers see it as the link of a citation.")


PASTE_TITLE_CHARS = KnowledgeSource._meta.get_field("title").max_length


class PasteForm(forms.Form):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "paste_%s")
        super().__init__(*args, **kwargs)

    title = forms.CharField(max_length=PASTE_TITLE_CHARS)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 10}),
                           help_text="Markdown headings (#, ##, ###) split it into passages.")
    url = forms.URLField(label="URL", max_length=500, required=False, assume_scheme="https",
                         help_text="Optional: customers see it as the link of a citation.")


class EditTextForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 16}))


# The longest question the ask box and the question list take, and how many questions the list takes.
MAX_QUESTION_CHARS = 2000
MAX_CHECKED_QUESTIONS = 50


class AskForm(forms.Form):
    question = forms.CharField(max_length=MAX_QUESTION_CHARS, widget=forms.TextInput(
        attrs={"placeholder": "How much is express shipping?", "autocomplete": "off"}))
    deployment = forms.ChoiceField(required=False, label="Answer as")

    def __init__(self, *args, deployments=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["deployment"]).choices = [("", "the default settings (quote)")] + [
            (d.slug, d.name) for d in deployments]


class QuestionListForm(forms.Form):
    """Customers' questions, one per line: blank lines and repeats are dropped, each line is a question."""

    max_questions = MAX_CHECKED_QUESTIONS

    NONE = "Paste at least one question, one per line."
    questions = forms.CharField(label="Questions, one per line", error_messages={"required": NONE},
                                widget=forms.Textarea(attrs={"rows": 6, "placeholder": (
                                    "How much is express shipping?\nCan I return worn shoes?\n"
                                    "Do you have a student discount?")}))

    def clean_questions(self) -> list[str]:
        questions: list[str] = []
        for number, line in enumerate(self.cleaned_data["questions"].splitlines(), start=1):
            question = line.strip()
            if len(question) > MAX_QUESTION_CHARS:
                raise forms.ValidationError(f"Line {number} is longer than {MAX_QUESTION_CHARS} characters.")
            if question and question not in questions:
                questions.append(question)
        if not questions:
            raise forms.ValidationError(self.NONE)
        if len(questions) > MAX_CHECKED_QUESTIONS:
            raise forms.ValidationError(f"At most {MAX_CHECKED_QUESTIONS} questions at a time: "
                                        f"this list has {len(questions)}.")
        return questions


class DeploymentKnowledgeForm(forms.Form):
    knowledge_base = forms.ModelChoiceField(KnowledgeBase.objects.none(), required=False,
                                            empty_label="— none: the model answers on its own —")
    policy = forms.ChoiceField(choices=AnswerPolicy.choices, label="Answer policy")
    threshold = forms.FloatField(min_value=0, max_value=1, label="Confidence threshold",
                                 help_text="Below it the bot does not answer (0–1).")
    when_unsure = forms.ChoiceField(choices=WhenUnsure.choices, label="When unsure")

    def __init__(self, *args, organization=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["knowledge_base"].queryset = KnowledgeBase.objects.filter(organization=organization)  # type: ignore[attr-defined]
