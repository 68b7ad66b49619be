"""Bad input at the command line: one readable line on stderr and exit status 2."""

from __future__ import annotations

import pytest

from vda.jobs.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["convert", "{tmp}/missing.pth", "{tmp}/out.pth"], "missing.pth' does not exist"),
        (["depth", "{tmp}/v.mp4", "--checkpoint", "{tmp}/missing.pth"], "does not exist"),
        (
            [
                "infer",
                "--input",
                "{tmp}/videos",
                "--output",
                "{tmp}/out",
                "--checkpoint",
                "{tmp}/missing.pth",
            ],
            "checkpoint {tmp}/missing.pth does not exist",
        ),
        (["train", "--data", "{tmp}/no-data"], "manifest.json does not exist"),
        (
            ["prepare", "--layout", "png16", "--src", "{tmp}/empty", "--dst", "{tmp}/d"],
            "no sequences",
        ),
        (["train", "optim.lrr=1"], "unknown config key(s) optim.lrr"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, capsys, argv, message):
    (tmp_path / "v.mp4").write_bytes(b"not a video")
    (tmp_path / "empty").mkdir()
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message.format(tmp=tmp_path) in err
    assert "Traceback" not in err
