"""The Apache Kafka broker's jars, resolved by Maven into a cache outside the checkout.

`python -m rci.services.kafka_jars` (run by scripts/bootstrap.sh) writes a two-dependency pom and
lets Maven copy the runtime closure into `<cache>/kafka-<version>/libs`. It is idempotent: a
`.complete` stamp is written only after Maven succeeds, and a file lock keeps two concurrent
callers from racing. The Maven repository itself also lives under the cache, so CI can keep one
folder between fresh clones.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from rci.services.process import ServiceError

KAFKA_VERSION = "4.3.1"
SCALA_VERSION = "2.13"
# The log4j-core that kafka_2.13:4.3.1 brings in (`mvn dependency:tree`); its slf4j-api is 1.7.x, so
# the binding is log4j-slf4j-impl (not -slf4j2-). Without a binding the broker logs nothing.
LOG4J_VERSION = "2.25.4"

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rci.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_root_from_env(environ: Mapping[str, str] = os.environ) -> Path:
    """`$RCI_CACHE_DIR`, default ~/.cache/rci (same rule as scripts/bootstrap.sh). Entry points only."""
    return Path(environ.get("RCI_CACHE_DIR") or Path.home() / ".cache" / "rci").expanduser()


def kafka_home(cache_root: Path, version: str = KAFKA_VERSION) -> Path:
    return cache_root / f"kafka-{version}"


def jar_dir(cache_root: Path, version: str = KAFKA_VERSION) -> Path:
    return kafka_home(cache_root, version) / "libs"


def jars_present(libs: Path) -> bool:
    return (libs / ".complete").is_file() and any(libs.glob("kafka_*.jar"))


def ensure_jars(cache_root: Path, version: str = KAFKA_VERSION, quiet: bool = True) -> Path:
    """The folder of broker jars, resolving them with Maven first if needed."""
    home = kafka_home(cache_root, version)
    libs = home / "libs"
    if jars_present(libs):
        return libs
    if shutil.which("mvn") is None:
        raise ServiceError("Maven (mvn) is needed once to fetch the Kafka jars; install it (apt-get install maven)")
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second caller waits here, then finds the stamp
        if not jars_present(libs):
            _resolve(home, libs, version, quiet)
    return libs


def _resolve(home: Path, libs: Path, version: str, quiet: bool) -> None:
    (home / "pom.xml").write_text(_POM.format(scala=SCALA_VERSION, kafka=version, log4j=LOG4J_VERSION))
    shutil.rmtree(libs, ignore_errors=True)
    command = [
        "mvn", "-B", *(["-q"] if quiet else []),
        "-f", str(home / "pom.xml"),
        f"-Dmaven.repo.local={home.parent / 'm2'}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"Maven could not resolve Kafka {version}:\n{(result.stdout + result.stderr)[-4000:]}")
    names = sorted(p.name for p in libs.glob("*.jar"))
    (libs / ".complete").write_text("\n".join(names) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fetch the Apache Kafka broker jars into the cache (idempotent).")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: $RCI_CACHE_DIR or ~/.cache/rci")
    parser.add_argument("--version", default=KAFKA_VERSION, help=f"Kafka release (default {KAFKA_VERSION})")
    parser.add_argument("--verbose", action="store_true", help="show Maven's output")
    args = parser.parse_args(argv)
    cache_root = args.cache_dir or cache_root_from_env()
    libs = ensure_jars(cache_root, args.version, quiet=not args.verbose)
    print(f"[kafka_jars] Kafka {args.version}: {len(list(libs.glob('*.jar')))} jars in {libs}")


if __name__ == "__main__":
    main()
