"""The base of every console and public form: what a browser's form can send reaches the fields, nothing else.

Flask-WTF hands a form `request.files` merged with `request.form`, and a JSON body when there is no form. A
text field then receives a file part (a `FileStorage`) or a JSON number from a hostile client and crashes in
its filters: a 500, before sign-in. Here a file part reaches only a FileField, and JSON never reaches a form;
the field sees no value and answers with its usual message.
"""
from flask import request
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from flask_wtf.form import _Auto  # Flask-WTF's "read the request" marker (pinned version)
from werkzeug.datastructures import CombinedMultiDict, MultiDict


class WebForm(FlaskForm):
    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form, formdata):
            if formdata is not _Auto:  # given explicitly, e.g. formdata=None for an empty form
                return formdata
            if not form.is_submitted():
                return None
            file_fields = {f.name for f in form if isinstance(f, FileField)}
            files = MultiDict([(k, v) for k, v in request.files.items(multi=True) if k in file_fields])
            if files:
                return CombinedMultiDict((files, request.form))
            return request.form or None
