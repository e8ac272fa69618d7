"""StreamModel: records to features, the prequential loop, a refused record changes nothing."""

import io
import json

import pytest

from streamrnn.records import Reader
from streamrnn.runner import StreamModel, run_records


def test_features_are_every_column_but_target_key_echo_and_ignore():
    m = StreamModel("regress", "y", echo=["id"], ignore=["note"], hidden_size=2, k1=1)
    x, y, key = m.parse({"id": "7", "note": "n/a", "a": "1.5", "b": "", "y": "2"}, lineno=1)
    assert (x, y, key) == ({"a": 1.5, "b": None}, 2.0, None)
    m = StreamModel("regress", "y", features=["b"], hidden_size=2, k1=1)
    assert m.parse({"a": "x", "b": "3", "y": None}, lineno=1) == ({"b": 3.0}, None, None)


@pytest.mark.parametrize(
    "record, message",
    [
        ({"a": "nan", "y": "1"}, "column 'a' is 'nan': values must be finite"),
        ({"a": [1], "y": "1"}, "column 'a' is [1], not a number"),
        ({"a": "1", "y": "one"}, "column 'y' is 'one', not a number"),
        ({"a": 10**400, "y": "1"}, "column 'a' is 1000000000000000000000000000000000000000...: too large for a float"),
        ({"a": "1e400", "y": "1"}, "column 'a' is '1e400': values must be finite"),
    ],
)
def test_bad_values_make_a_malformed_record(record, message):
    m = StreamModel("regress", "y", hidden_size=2, k1=1)
    with pytest.raises(ValueError) as info:
        m.parse(record, lineno=3)
    assert str(info.value) == f"<input>, line 3: {message}"


def test_labels_and_keys():
    m = StreamModel("classify", "label", key="host", hidden_size=2, k1=1)
    assert m.parse({"host": "a", "x": 1, "label": True}, lineno=1) == ({"x": 1.0}, True, "a")
    assert m.parse({"host": 3, "x": 1, "label": 2.0}, lineno=1) == ({"x": 1.0}, 2, 3)
    with pytest.raises(ValueError, match="key column 'host' is null"):
        m.parse({"host": None, "x": 1, "label": "a"}, lineno=1)
    with pytest.raises(ValueError, match="not a label"):
        m.parse({"host": "a", "x": 1, "label": {"a": 1}}, lineno=1)
    with pytest.raises(ValueError, match="task 'forecast'"):
        StreamModel("forecast", "y", key="host")


def test_a_record_the_estimator_refuses_leaves_the_model_as_it_was():
    m = StreamModel("regress", "y", hidden_size=2, k1=1)
    m.learn({"a": 1.0}, 1.0)
    before = (dict(m.scaler.stats), m.learned)

    def refuse(x, y):
        raise ValueError("refused")

    m.estimator.learn_one = refuse
    with pytest.raises(ValueError, match="refused"):
        m.learn({"a": 5.0, "b": 2.0}, 3.0)
    assert (m.scaler.stats, m.learned) == before


def test_run_records_writes_one_line_per_record_then_learns():
    m = StreamModel("regress", "y", hidden_size=2, k1=1, seed=1)
    out, messages = io.StringIO(), []
    data = b"a,y\n1,2\nx,3\n2,\n3,4\n"
    code = run_records(m, Reader(io.BytesIO(data)), out, messages.append)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 0 and [d["n"] for d in lines] == [1, 2, 3]
    assert (m.records, m.learned) == (3, 2)
    assert messages[0] == "<input>, line 3: column 'a' is 'x', not a number; record skipped"
    assert messages[-1] == "3 records predicted, 1 skipped (3 predicted over the model's life, 2 learned)"
