// Injected by tests/report/test_zoo_report.py (and benchmarks/bench_report.py) at the end of a report page:
// after the page is parsed, forces layout, then writes what it measured into <pre id="layout-check">
// as JSON: elements wider than the viewport outside a scroll box, model sections no nav link reaches,
// and milliseconds from navigation to parsed and to laid out.
(function () {
  var parsed = performance.now();
  document.body.offsetHeight; document.documentElement.scrollWidth;   // force style and layout
  var rendered = performance.now();
  var vw = document.documentElement.clientWidth, bad = [], seen = 0;
  function clipped(el) {
    for (var a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      var ox = getComputedStyle(a).overflowX;
      if (ox === 'auto' || ox === 'scroll' || ox === 'hidden') {
        var r = a.getBoundingClientRect();
        return r.right <= vw + 1 && r.left >= -1;
      }
    }
    return false;
  }
  var els = document.body.querySelectorAll('table, svg, pre, nav, p, div, h1, h2, h3, details, section');
  for (var i = 0; i < els.length; i++) {
    var r = els[i].getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    seen++;
    if ((r.right > vw + 1 || r.left < -1) && !clipped(els[i]) && bad.length < 20)
      bad.push(els[i].tagName + (els[i].id ? '#' + els[i].id : '') + ' right=' + Math.round(r.right) + ' ' +
               (els[i].textContent || '').slice(0, 60));
  }
  var sections = document.querySelectorAll('section[id^="model-"]'), unlinked = [];
  for (var j = 0; j < sections.length; j++)
    if (!document.querySelector('nav a[href="#' + sections[j].id + '"]')) unlinked.push(sections[j].id);
  var out = document.createElement('pre');
  out.id = 'layout-check';
  out.textContent = JSON.stringify({viewport: vw, page_scroll_width: document.documentElement.scrollWidth,
    checked: seen, overflowing: bad, models: sections.length, unlinked: unlinked, parsed_ms: parsed,
    rendered_ms: rendered});
  document.body.appendChild(out);
})();
