// pipe ui: sorting, filtering and selecting on the server-rendered tables. Every page reads
// without it.
"use strict";

function cellValue(row, index, numeric) {
  const text = row.cells[index].textContent.trim();
  if (!numeric) return text;
  const value = parseFloat(text);
  return Number.isNaN(value) ? -Infinity : value;
}

// Sorting by a column. In the runs table each run, and each sweep with its runs, is a <tbody>:
// the blocks are sorted by their first row (a sweep's own row), a sweep's runs within it.
for (const table of document.querySelectorAll("table.sortable")) {
  table.querySelectorAll("th").forEach((th, index) => {
    th.addEventListener("click", () => {
      const numeric = th.dataset.type === "number";
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const compare = (a, b) => {
        const x = cellValue(a, index, numeric);
        const y = cellValue(b, index, numeric);
        const order = x < y ? -1 : x > y ? 1 : 0;
        return ascending ? order : -order;
      };
      const bodies = Array.from(table.tBodies);
      if (bodies.length === 1) {
        Array.from(bodies[0].rows).sort(compare).forEach((row) => bodies[0].appendChild(row));
        return;
      }
      bodies.sort((a, b) => compare(a.rows[0], b.rows[0])).forEach((body) => table.appendChild(body));
      for (const body of bodies) {
        Array.from(body.rows).slice(1).sort(compare).forEach((row) => body.appendChild(row));
      }
    });
  });
}

const runs = document.getElementById("runs");
if (runs) {
  const filter = document.getElementById("filter");
  const status = document.getElementById("status");
  const compare = document.getElementById("compare");
  const matches = (row, needle) => {
    const rowStatus = row.querySelector("td.status").textContent.trim();
    return (!needle || row.textContent.toLowerCase().includes(needle)) && (!status.value || rowStatus === status.value);
  };
  // A sweep shows while its own row or any of its runs matches.
  const apply = () => {
    const needle = filter.value.trim().toLowerCase();
    for (const body of runs.tBodies) {
      let any = false;
      for (const row of body.rows) {
        const shown = matches(row, needle);
        row.classList.toggle("hidden", !shown);
        any = any || shown;
      }
      if (body.rows[0].classList.contains("sweep-head") && any) body.rows[0].classList.remove("hidden");
    }
  };
  filter.addEventListener("input", apply);
  status.addEventListener("change", apply);
  document.getElementById("all-params").addEventListener("change", (event) => {
    document.body.classList.toggle("all-params", event.target.checked);
  });
  for (const button of runs.querySelectorAll("button.expand")) {
    button.addEventListener("click", () => {
      const open = button.getAttribute("aria-expanded") !== "true";
      button.setAttribute("aria-expanded", String(open));
      button.textContent = (open ? "▾ " : "▸ ") + button.textContent.slice(2);
      for (const row of button.closest("tbody").querySelectorAll("tr.member")) row.hidden = !open;
    });
  }
  // `#sweeps-open` in the address opens every sweep (a link to the unfolded list).
  if (window.location.hash === "#sweeps-open") {
    for (const button of runs.querySelectorAll("button.expand")) button.click();
  }
  const selected = () => Array.from(runs.querySelectorAll("tbody input:checked")).map((box) => box.value);
  runs.addEventListener("change", () => {
    // An exported site has no server to make a comparison.
    compare.disabled = selected().length < 2 || compare.dataset.needsServer === "1";
  });
  compare.addEventListener("click", () => {
    window.location.href = "/compare?runs=" + selected().map(encodeURIComponent).join(",");
  });
}

// A running run's page: its part is fetched again every 2 s and swapped in, until the run ends.
const live = document.querySelector("#run[data-live]");
if (live) {
  const refresh = async () => {
    try {
      const response = await fetch(window.location.href, { cache: "no-store" });
      const next = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("#run");
      if (next) {
        live.innerHTML = next.innerHTML;
        if (!next.hasAttribute("data-live")) {
          live.removeAttribute("data-live");
          return;
        }
      }
    } catch (error) {
      // The server may be restarting: try again on the next tick.
    }
    setTimeout(refresh, 2000);
  };
  setTimeout(refresh, 2000);
}

// A legend button hides or shows its series in every chart of the page.
for (const button of document.querySelectorAll("button.series-toggle")) {
  button.addEventListener("click", () => {
    const shown = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(shown));
    for (const series of document.querySelectorAll("g.series")) {
      if (series.dataset.series === button.dataset.series) series.toggleAttribute("hidden", !shown);
    }
  });
}

// Reached only when everything above ran without an error: the browser tests look for it.
document.body.dataset.ready = "1";

// How long the page took to load (navigation start to the load event), for the benchmark.
window.addEventListener("load", () => {
  document.body.dataset.loadMs = String(Math.round(performance.now()));
});
