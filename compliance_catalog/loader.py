"""Reads the versioned catalog files (data/*.yaml), checks them, and loads them idempotently."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import connection, transaction
from django_tenants.utils import get_public_schema_name

from compliance_catalog.models import CatalogLoad, Control, Framework, Requirement

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
INDEX_FILE = "catalog.yaml"
_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_CONTROL_RE = re.compile(r"^[A-Z]{2,5}-\d{2,3}$")
_CHECK_RE = re.compile(r"^[a-z][a-z0-9_]{1,59}$")


class CatalogError(ValueError):
    """A catalog file is malformed; the message names the file and the entry."""


@dataclass
class FrameworkSpec:
    code: str
    name: str
    version: str
    revision: int
    # (ref, title, group ref, group title) in file order.
    requirements: list[tuple[str, str, str, str]] = field(default_factory=list)


@dataclass
class ControlSpec:
    code: str
    title: str
    description: str
    check: str
    maps: dict[str, list[str]]


@dataclass
class Catalog:
    frameworks: list[FrameworkSpec]
    controls: list[ControlSpec]
    controls_revision: int
    digest: str

    def revisions(self) -> dict[str, int]:
        revisions = {spec.code: spec.revision for spec in self.frameworks}
        return {**revisions, "controls": self.controls_revision}


def _read(path: Path, digest: Any) -> dict:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{path.name}: cannot read ({exc.strerror})") from None
    digest.update(path.name.encode() + b"\0" + raw + b"\0")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path.name}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path.name}: expected a mapping at the top")
    return data


def _text(value: Any, where: str, *, limit: int = 200) -> str:
    if not isinstance(value, str | int | float) or not str(value).strip():
        raise CatalogError(f"{where}: expected non-empty text")
    text = str(value).strip()
    if len(text) > limit:
        raise CatalogError(f"{where}: longer than {limit} characters")
    return text


def _revision(data: dict, where: str) -> int:
    revision = data.get("revision")
    if not isinstance(revision, int) or revision < 1:
        raise CatalogError(f"{where}: 'revision' must be a positive whole number")
    return revision


def _framework(path: Path, digest: Any) -> FrameworkSpec:
    data = _read(path, digest)
    name = path.name
    code = _text(data.get("framework"), f"{name}: framework", limit=40)
    if not _CODE_RE.match(code):
        raise CatalogError(f"{name}: framework code {code!r} must be lower-case letters, _, digits")
    spec = FrameworkSpec(
        code=code,
        name=_text(data.get("name"), f"{name}: name", limit=100),
        version=_text(data.get("version"), f"{name}: version", limit=60),
        revision=_revision(data, name),
    )
    groups = data.get("groups")
    if not isinstance(groups, list) or not groups:
        raise CatalogError(f"{name}: 'groups' must be a non-empty list")
    seen: set[str] = set()
    for index, group in enumerate(groups, start=1):
        where = f"{name}: group {index}"
        if not isinstance(group, dict):
            raise CatalogError(f"{where}: expected a mapping")
        group_ref = _text(group.get("id"), f"{where}: id", limit=40)
        group_title = _text(group.get("title"), f"{where}: title")
        items = group.get("requirements")
        if not isinstance(items, list) or not items:
            raise CatalogError(f"{where} ({group_ref}): 'requirements' must be a non-empty list")
        for item in items:
            if not isinstance(item, list) or len(item) != 2:
                raise CatalogError(f"{where} ({group_ref}): {item!r} is not [id, title]")
            ref = _text(item[0], f"{where}: requirement id", limit=40)
            if ref in seen:
                raise CatalogError(f"{name}: requirement {ref} appears twice")
            seen.add(ref)
            spec.requirements.append(
                (ref, _text(item[1], f"{name}: {ref}"), group_ref, group_title)
            )
    return spec


def _controls(path: Path, digest: Any, frameworks: dict[str, set[str]]) -> tuple[list, int]:
    data = _read(path, digest)
    name = path.name
    revision = _revision(data, name)
    items = data.get("controls")
    if not isinstance(items, list) or not items:
        raise CatalogError(f"{name}: 'controls' must be a non-empty list")
    controls: list[ControlSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise CatalogError(f"{name}: control {index}: expected a mapping")
        code = _text(item.get("code"), f"{name}: control {index}: code", limit=20)
        if not _CONTROL_RE.match(code):
            raise CatalogError(f"{name}: control code {code!r} must look like 'IR-01'")
        if code in seen:
            raise CatalogError(f"{name}: control {code} appears twice")
        seen.add(code)
        check = str(item.get("check") or "")
        if check and not _CHECK_RE.match(check):
            raise CatalogError(f"{name}: {code}: check {check!r} is no check name")
        maps = item.get("maps")
        if not isinstance(maps, dict) or not maps:
            raise CatalogError(f"{name}: {code}: 'maps' must map frameworks to requirement ids")
        clean_maps: dict[str, list[str]] = {}
        for framework, refs in maps.items():
            if framework not in frameworks:
                raise CatalogError(f"{name}: {code}: unknown framework {framework!r}")
            if not isinstance(refs, list) or not refs:
                raise CatalogError(f"{name}: {code}: {framework} needs a list of requirement ids")
            clean_refs = [str(ref) for ref in refs]
            for ref in clean_refs:
                if ref not in frameworks[framework]:
                    raise CatalogError(f"{name}: {code}: {framework} has no requirement {ref!r}")
            clean_maps[framework] = list(dict.fromkeys(clean_refs))
        controls.append(
            ControlSpec(
                code=code,
                title=_text(item.get("title"), f"{name}: {code}: title"),
                description=_text(item.get("description") or "-", f"{name}: {code}", limit=1000),
                check=check,
                maps=clean_maps,
            )
        )
    return controls, revision


def read_catalog(data_dir: Path = DATA_DIR) -> Catalog:
    """The catalog as the files hold it, fully checked; raises CatalogError naming the problem."""
    digest = hashlib.sha256()
    index = _read(data_dir / INDEX_FILE, digest)
    files = index.get("frameworks")
    if not isinstance(files, list) or not files:
        raise CatalogError(f"{INDEX_FILE}: 'frameworks' must list the framework files")
    frameworks = [_framework(data_dir / str(file), digest) for file in files]
    codes = [spec.code for spec in frameworks]
    if len(set(codes)) != len(codes):
        raise CatalogError(f"{INDEX_FILE}: a framework code appears twice")
    refs = {spec.code: {ref for ref, *_ in spec.requirements} for spec in frameworks}
    controls, revision = _controls(data_dir / str(index.get("controls", "")), digest, refs)
    return Catalog(frameworks, controls, revision, digest.hexdigest())


@dataclass(frozen=True)
class LoadOutcome:
    """What a load did: "loaded" or "unchanged", with the content digest and counts."""

    status: str
    digest: str
    frameworks: int
    requirements: int
    controls: int


def _counts(catalog: Catalog, status: str) -> LoadOutcome:
    return LoadOutcome(
        status,
        catalog.digest,
        len(catalog.frameworks),
        sum(len(spec.requirements) for spec in catalog.frameworks),
        len(catalog.controls),
    )


@transaction.atomic
def load_catalog(data_dir: Path = DATA_DIR, *, force: bool = False) -> LoadOutcome:
    """Bring the catalog tables in line with the files; a no-op when the content is unchanged."""
    catalog = read_catalog(data_dir)
    # One loader at a time (two processes migrating at once would otherwise race on the rows).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('compliance_catalog.load'))")
    latest = CatalogLoad.objects.order_by("-loaded_at", "-pk").first()
    if latest is not None and latest.digest == catalog.digest and not force:
        return _counts(catalog, "unchanged")
    by_ref: dict[tuple[str, str], Requirement] = {}
    for position, spec in enumerate(catalog.frameworks):
        framework, _ = Framework.objects.update_or_create(
            code=spec.code,
            defaults={
                "name": spec.name,
                "version": spec.version,
                "revision": spec.revision,
                "position": position,
            },
        )
        refs = [ref for ref, *_ in spec.requirements]
        framework.requirements.exclude(ref__in=refs).delete()
        for req_position, (ref, title, group_ref, group_title) in enumerate(spec.requirements):
            requirement, _ = Requirement.objects.update_or_create(
                framework=framework,
                ref=ref,
                defaults={
                    "title": title,
                    "group_ref": group_ref,
                    "group_title": group_title,
                    "position": req_position,
                },
            )
            by_ref[(spec.code, ref)] = requirement
    Framework.objects.exclude(code__in=[spec.code for spec in catalog.frameworks]).delete()
    for position, spec in enumerate(catalog.controls):
        control, _ = Control.objects.update_or_create(
            code=spec.code,
            defaults={
                "title": spec.title,
                "description": spec.description,
                "check_name": spec.check,
                "retired": False,
                "position": position,
            },
        )
        control.requirements.set(
            [by_ref[(framework, ref)] for framework, refs in spec.maps.items() for ref in refs]
        )
    Control.objects.exclude(code__in=[spec.code for spec in catalog.controls]).update(retired=True)
    CatalogLoad.objects.create(digest=catalog.digest, revisions=catalog.revisions())
    return _counts(catalog, "loaded")


def load_after_migrate(sender, verbosity: int = 1, **kwargs) -> None:
    """post_migrate receiver: load the catalog whenever the public schema is migrated."""
    if connection.schema_name != get_public_schema_name():
        return  # tenant schemas hold no catalog tables
    outcome = load_catalog()
    if verbosity >= 1 and outcome.status == "loaded":
        logger.info(
            "compliance catalog loaded: %s frameworks, %s requirements, %s controls",
            outcome.frameworks,
            outcome.requirements,
            outcome.controls,
        )
