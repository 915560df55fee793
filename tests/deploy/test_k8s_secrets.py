"""No committed file under deploy/k8s holds a secret value; the dev overlay's generator makes
fresh ones."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from tests.deploy.k8s_manifests import K8S, committed_files, env_file, run_make_secrets

from cadenza.infrastructure.secrets_crypto import parse_keys

SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY\b")


def _placeholder_only(value: str) -> bool:
    """Empty, or a URL whose password is a <PLACEHOLDER>."""
    if not value:
        return True
    password = urlsplit(value).password
    return "://" in value and (password is None or re.fullmatch(r"<[A-Z_]+>", password) is not None)


def test_committed_files_hold_no_secret_value() -> None:
    checked = 0
    for path in committed_files():
        assert path.name not in ("secrets.env", "deps.env"), f"{path} must not be committed"
        if path.name.endswith(".env.example"):
            for key, value in env_file(path).items():
                assert _placeholder_only(value), (path, key)
                assert not (SECRET_WORDS.search(key) and value), (path, key)
                checked += 1
        if path.suffix not in (".yaml", ".yml"):
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Secret":
                values = {**doc.get("data", {}), **doc.get("stringData", {})}
                assert set(values.values()) <= {""}, path
                checked += len(values)
            if doc.get("kind") == "ConfigMap":
                for key, value in doc.get("data", {}).items():
                    assert not SECRET_WORDS.search(key), (path, key)
                    assert "://" not in value or urlsplit(value).password is None, (path, key)
            for generator in (
                doc.get("secretGenerator", []) if doc.get("kind") == "Kustomization" else []
            ):
                assert "literals" not in generator, path
                assert "files" not in generator, path
                for env in generator["envs"]:
                    assert _ignored(path.parent / env), f"{path}: {env} must be git-ignored"
                    checked += 1
    assert checked >= 20


def _ignored(path: Path) -> bool:
    done = subprocess.run(
        ["git", "check-ignore", "-q", str(path)], cwd=K8S, check=False, timeout=30
    )
    return done.returncode == 0


def test_make_secrets_writes_fresh_values_for_every_key(tmp_path: Path) -> None:
    made: list[dict[str, str]] = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        done = run_make_secrets(tmp_path / name)
        assert done.returncode == 0, done.stderr
        assert oct((tmp_path / name / "secrets.env").stat().st_mode & 0o777) == "0o600"
        made.append(
            {**env_file(tmp_path / name / "secrets.env"), **env_file(tmp_path / name / "deps.env")}
        )
    dev = K8S / "overlays" / "dev"
    keys = {**env_file(dev / "secrets.env.example"), **env_file(dev / "deps.env.example")}
    for values in made:
        assert set(values) == set(keys)
        for key in ("CADENZA_TOKEN_SECRET", "CADENZA_METRICS_TOKEN", "CADENZA_MCP_PROXY_TOKEN"):
            assert len(values[key]) >= 32, key
        assert len(values["CADENZA_ADMIN_PASSWORD"]) >= 12
        assert len(parse_keys(values["CADENZA_SECRETS_KEY"], "CADENZA_SECRETS_KEY")) == 1
        assert urlsplit(values["CADENZA_DATABASE_URL"]).password == values["MYSQL_PASSWORD"]
        assert urlsplit(values["CADENZA_REDIS_URL"]).password == values["REDIS_PASSWORD"]
    secret = {k for k, v in made[0].items() if v and "://" not in v}
    assert all(made[0][k] != made[1][k] for k in secret), "every run draws new values"
    again = run_make_secrets(tmp_path / "one")
    assert again.returncode == 1
    assert "exists" in again.stderr
