"""The project's habits, checked on the source with `ast` (nothing of the package is imported, so
this runs without TensorFlow, a browser or even the plugin's own dependencies):

- every public function and method of tb_batchavg/ has annotations on all its parameters
  (self and cls aside) and a return annotation: a name not starting with `_`, and `__init__` of a
  public class when it takes parameters; nested functions and methods of private classes (and of
  classes built inside functions) are not counted;
- the numeric core, tb_batchavg/stats/, imports no TensorBoard, TensorFlow or werkzeug, and
  nothing of tb_batchavg.server or tb_batchavg.ingest;
- tb_batchavg/ingest does not import tb_batchavg.server.

Every import counts, wherever it is: inside a function and under `if TYPE_CHECKING:` too.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tb_batchavg"


def _modules(folder=PACKAGE):
    return sorted(folder.rglob("*.py"))


def _parse(path):
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _where(path, node, name, root=ROOT):
    return "%s:%d %s" % (path.relative_to(root).as_posix(), node.lineno, name)


def _public_functions(body, owner=None):
    """(qualified name, node, is a method) of the public functions and methods defined in `body`:
    the module's top level (including blocks such as `if`/`try`) and public classes, recursively;
    never inside a function."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            public = not node.name.startswith("_") or (owner is not None and node.name == "__init__")
            if public:
                yield (owner + "." if owner else "") + node.name, node, owner is not None
        elif isinstance(node, ast.ClassDef):
            if not node.name.startswith("_"):
                yield from _public_functions(node.body, (owner + "." if owner else "") + node.name)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from _public_functions(getattr(node, block, []), owner)
            for handler in getattr(node, "handlers", []):
                yield from _public_functions(handler.body, owner)


def _missing_annotations(node, is_method):
    """The names of `node`'s parameters without an annotation ("return" for the return)."""
    args = node.args
    params = args.posonlyargs + args.args + args.kwonlyargs
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in node.decorator_list)
    if is_method and not static and params and params[0].arg in ("self", "cls"):
        params = params[1:]
    missing = [p.arg for p in params if p.annotation is None]
    if node.returns is None:
        missing.append("return")
    return missing, params


def test_public_functions_are_annotated():
    offenders, checked = [], 0
    for path in _modules():
        for name, node, is_method in _public_functions(_parse(path).body):
            missing, params = _missing_annotations(node, is_method)
            if node.name == "__init__" and not params:
                continue  # an __init__ taking nothing but self needs no annotation
            checked += 1
            if missing:
                offenders.append("%s (no annotation: %s)" % (_where(path, node, name), ", ".join(missing)))
    assert checked > 100, "the walk found only %d public functions: is it looking in the right place?" % checked
    assert not offenders, "%d public functions or methods lack annotations:\n%s" % (
        len(offenders),
        "\n".join(offenders),
    )


def _imported(path, root=ROOT):
    """(node, absolute dotted name) of everything `path` imports: `import a.b` gives a.b;
    `from m import x` gives m and m.x (x may be a module); relative imports are resolved."""
    package = list(path.relative_to(root).parts[:-1])  # of a package's __init__.py too
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module
            yield node, origin
            for alias in node.names:
                if alias.name != "*":
                    yield node, origin + "." + alias.name


def _matches(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _forbidden_imports(folder, prefixes, root=ROOT):
    found = set()
    for path in _modules(folder):
        for node, name in _imported(path, root):
            if _matches(name, prefixes):
                found.add(_where(path, node, "imports " + name, root))
    return sorted(found)


def test_numeric_core_imports_no_tensorboard_and_nothing_of_server_or_ingest():
    forbidden = ("tensorboard", "tensorflow", "werkzeug", "tb_batchavg.server", "tb_batchavg.ingest")
    found = _forbidden_imports(PACKAGE / "stats", forbidden)
    assert not found, "tb_batchavg/stats is the pure numeric core; these imports break that:\n" + "\n".join(found)


def test_ingest_does_not_import_server():
    found = _forbidden_imports(PACKAGE / "ingest", ("tb_batchavg.server",))
    assert not found, "tb_batchavg/ingest must not depend on the server:\n" + "\n".join(found)


def test_import_resolution_sees_relative_and_from_package_imports(tmp_path):
    """The import check itself: `from ..server import x`, `from tb_batchavg import server` and an
    import inside a function are all seen."""
    folder = tmp_path / "tb_batchavg" / "stats"
    folder.mkdir(parents=True)
    (folder / "a.py").write_text("from ..server import store\n")
    (folder / "b.py").write_text("from tb_batchavg import ingest\n")
    (folder / "c.py").write_text("def f():\n    import tensorboard.compat\n")
    (folder / "d.py").write_text("from . import windows\nimport numpy as np\nfrom tb_batchavg import metadata\n")
    (folder / "__init__.py").write_text("from .. import server\n")
    found = _forbidden_imports(folder, ("tensorboard", "tb_batchavg.server", "tb_batchavg.ingest"), tmp_path)
    assert found == [
        "tb_batchavg/stats/__init__.py:1 imports tb_batchavg.server",
        "tb_batchavg/stats/a.py:1 imports tb_batchavg.server",
        "tb_batchavg/stats/a.py:1 imports tb_batchavg.server.store",
        "tb_batchavg/stats/b.py:1 imports tb_batchavg.ingest",
        "tb_batchavg/stats/c.py:2 imports tensorboard.compat",
    ]
