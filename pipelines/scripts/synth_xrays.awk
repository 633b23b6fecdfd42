# Seeded synthetic "radiographs" as greyscale PGM (P2) images: a long bone (bright cortex, darker
# canal) on soft-tissue haze with film grain; the fractured class has a thin dark break across the
# bone, sometimes displaced. A stand-in until the built-in `ingest` generator lands (issue 3).
# Variables: out (folder), n (images per class), size (pixels), seed.
function rnd(lo, hi) { return lo + (hi - lo) * rand() }
function clamp(v) { return v < 0 ? 0 : (v > 255 ? 255 : int(v)) }
BEGIN {
  srand(seed)
  split("fractured not_fractured", classes, " ")
  for (c = 1; c <= 2; c++) {
    system("mkdir -p '" out "/" classes[c] "'")
    for (k = 0; k < n; k++) {
      file = sprintf("%s/%s/img_%03d.pgm", out, classes[c], k)
      cx = rnd(0.35, 0.65) * size; half = rnd(0.08, 0.14) * size; canal = half * rnd(0.35, 0.55)
      exposure = rnd(0.8, 1.2); tilt = rnd(-0.25, 0.25)
      breaky = rnd(0.3, 0.7) * size; shift = (rand() < 0.4) ? rnd(1, 3) : 0
      print "P2\n" size " " size "\n255" > file
      for (y = 0; y < size; y++) {
        line = ""
        for (x = 0; x < size; x++) {
          centre = cx + tilt * (y - size / 2) + (y > breaky ? shift : 0)
          d = x - centre; if (d < 0) d = -d
          v = 40 + 25 * exp(-((x - size / 2) ^ 2) / (2 * (size / 3) ^ 2))
          if (d < half) v = (d < canal) ? 150 : 215
          if (c == 1 && d < half && (y - breaky) ^ 2 < 1.5) v = 70
          line = line clamp(v * exposure + rnd(-18, 18)) " "
        }
        print line > file
      }
      close(file)
    }
  }
}
