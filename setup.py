"""`pip install --no-build-isolation .`: builds the Python module with CMake (the same build
as scripts/build, less the tests, examples and benchmarks) and installs the opgraph
package with libopgraph beside the module. Offline with Debian's setuptools and pybind11
(scripts/deps installs them); docs/python.md has the other ways to install."""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build = os.path.abspath(os.path.join(self.build_temp, "cmake"))
        subprocess.check_call(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                               f"-DPython3_EXECUTABLE={sys.executable}", "-DOPGRAPH_BUILD_TESTS=OFF",
                               "-DOPGRAPH_BUILD_EXAMPLES=OFF", "-DOPGRAPH_BUILD_BENCH=OFF"])
        subprocess.check_call(["cmake", "--build", build, "--target", "opgraph_python", "-j", str(os.cpu_count() or 1)])
        target = os.path.dirname(os.path.abspath(self.get_ext_fullpath(ext.name)))
        os.makedirs(target, exist_ok=True)
        for f in glob.glob(os.path.join(build, "python", "opgraph", "_opgraph*.so")):
            shutil.copy2(f, os.path.join(target, os.path.basename(self.get_ext_fullpath(ext.name))))
        # The module finds the library through its RUNPATH $ORIGIN.
        shutil.copy2(os.path.realpath(os.path.join(build, "libopgraph.so.0")), os.path.join(target, "libopgraph.so.0"))


setup(
    name="opgraph",
    version="0.1.0",
    description="A computation-graph framework for training neural networks",
    packages=["opgraph"],
    package_dir={"opgraph": "frontends/python/opgraph"},
    ext_modules=[Extension("opgraph._opgraph", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    install_requires=["numpy"],
    python_requires=">=3.9",
    zip_safe=False,
    # setuptools' default build folder, build/, is CMake's: keep pip's work in a corner of it.
    options={"build": {"build_base": "build/pip"}},
)
