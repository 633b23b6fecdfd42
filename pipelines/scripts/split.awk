# Seeded, stratified train/val/test split of a manifest CSV (path,bytes,blake3,label): within each
# label, rows are shuffled by a seeded key and cut by the given fractions. Writes path,label,split
# to stdout and per-split counts as JSON to `counts`. Variables: seed, val, test, counts.
BEGIN { FS = ","; srand(seed) }
NR == 1 { next }
{ key[NR] = rand(); row[NR] = $1 "," $4; label[NR] = $4; total[$4]++ }
END {
  print "path,label,split"
  for (l in total) {
    m = 0
    for (i in row) if (label[i] == l) order[++m] = i
    for (a = 2; a <= m; a++) { v = order[a]; b = a - 1; while (b > 0 && key[order[b]] > key[v]) { order[b + 1] = order[b]; b-- } order[b + 1] = v }
    n_test = int(m * test + 0.5); n_val = int(m * val + 0.5)
    for (a = 1; a <= m; a++) {
      s = (a <= n_test) ? "test" : (a <= n_test + n_val ? "val" : "train")
      print row[order[a]] "," s; count[s]++
    }
  }
  printf "{\"train\": %d, \"val\": %d, \"test\": %d}\n", count["train"], count["val"], count["test"] > counts
}
