"""Zeo++ (pyzeo) geometry of one CIF, run in a child process by bench_geometry.py.

    python experiments/_zeo.py FILE.cif PROBE SAMPLES [VOLUME_SAMPLES]

Zeo++ can abort the whole process on some structures (a failed Voronoi decomposition calls
exit()), so the benchmark runs it here, one structure per process, and reads one JSON line from
stdout. Settings: Zeo++ default (CCDC) radii, high-accuracy mode (-ha), free-sphere diameters
(Di, Df, Dif), accessible surface area (SAMPLES per atom) and volume (VOLUME_SAMPLES per cell,
default SAMPLES) with channel and probe radius PROBE, and the volume for a point probe.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile


def main(path: str, probe: float, samples: int, volume_samples: int) -> None:
    import pyzeo.area_volume as av
    import pyzeo.netstorage as ns

    def number(text, key):
        return float(re.search(rf"{re.escape(key)}:?\s+([-\d.eE+]+)", text).group(1))

    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        fd = os.dup(1)
        os.dup2(devnull.fileno(), 1)  # Zeo++'s C++ code prints to the process's stdout
        try:
            net = ns.AtomNetwork.read_from_CIF(path)
            vol0, ha_net = av.volume(net, 0.0, 0.0, volume_samples, high_accuracy=True)
            out = tempfile.mktemp(suffix=".res")
            ha_net.calculate_free_sphere_parameters(out)
            di, df, dif = (float(v) for v in open(out).read().split()[1:4])
            os.remove(out)
            sa = av.surface_area(net, probe, probe, samples, high_accuracy=True,
                                 high_accuracy_atmnet=ha_net)  # fmt: skip
            vol = av.volume(net, probe, probe, volume_samples, high_accuracy=True,
                            high_accuracy_atmnet=ha_net)  # fmt: skip
        finally:
            os.dup2(fd, 1)
    sa = (sa[0] if isinstance(sa, tuple) else sa).decode()
    vol = (vol[0] if isinstance(vol, tuple) else vol).decode()
    vol0 = vol0.decode() if isinstance(vol0, bytes) else vol0
    print(
        json.dumps(
            {
                "lcd": di,
                "pld": df,
                "lfpd": dif,
                "asa_m2_g": number(sa, "ASA_m^2/g"),
                "asa_m2_cm3": number(sa, "ASA_m^2/cm^3"),
                "av_vf": number(vol, "AV_Volume_fraction"),
                "gvf": number(vol0, "AV_Volume_fraction"),
                "density": number(sa, "Density"),
            }
        )
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], float(args[1]), int(args[2]), int(args[3] if len(args) > 3 else args[2]))
