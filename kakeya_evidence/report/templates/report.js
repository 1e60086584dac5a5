// Search, outcome filters and sorting for the table of every test. The rows are
// rendered on the server; without this script they all show, in their default order.
(function () {
  "use strict";
  var table = document.getElementById("tests-table");
  var controls = document.getElementById("controls");
  if (!table || !controls) { return; }
  var search = document.getElementById("test-search");
  var shown = document.getElementById("shown");
  var boxes = controls.querySelectorAll("#outcome-filters input[type=checkbox]");
  var rows = Array.prototype.map.call(table.tBodies, function (body, index) {
    var cells = body.rows[0].cells;
    var name = cells[1].textContent;
    var nodeid = cells[0].textContent + (name ? "::" + name : "");
    return {
      body: body,
      index: index,
      nodeid: nodeid,
      text: (nodeid + "\n" + cells[4].textContent).toLowerCase(),
      outcome: cells[2].textContent,
      duration: parseFloat(cells[3].textContent) || 0
    };
  });
  var sortKey = "default";
  var descending = false;

  function filter() {
    var query = search.value.trim().toLowerCase();
    var wanted = {};
    Array.prototype.forEach.call(boxes, function (box) { wanted[box.value] = box.checked; });
    var count = 0;
    rows.forEach(function (row) {
      var visible = wanted[row.outcome] !== false && (!query || row.text.indexOf(query) !== -1);
      row.body.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = "showing " + count + " of " + rows.length;
  }

  function compare(a, b) {
    if (sortKey === "duration") { return (a.duration - b.duration) || (a.index - b.index); }
    if (sortKey === "name") { return a.nodeid < b.nodeid ? -1 : a.nodeid > b.nodeid ? 1 : 0; }
    return a.index - b.index;
  }

  function sort(key) {
    descending = key === sortKey ? !descending : key === "duration";
    sortKey = key;
    var ordered = rows.slice().sort(compare);
    if (descending && key !== "default") { ordered.reverse(); }
    var fragment = document.createDocumentFragment();
    ordered.forEach(function (row) { fragment.appendChild(row.body); });
    table.appendChild(fragment);
  }

  search.addEventListener("input", filter);
  Array.prototype.forEach.call(boxes, function (box) { box.addEventListener("change", filter); });
  Array.prototype.forEach.call(controls.querySelectorAll("button[data-sort]"), function (button) {
    button.addEventListener("click", function () { sort(button.getAttribute("data-sort")); });
  });
  controls.hidden = false;
  filter();
}());
