// The A/B test page's create form: the sample-size calculator and the weight check (no inline script: CSP).
(function () {
  var form = document.getElementById("create-form");
  if (!form) return;
  var out = document.getElementById("calc-result"), target = document.getElementById("sample_size_target");
  var lastTotal = null, timer = null;
  function arms() {
    return Array.prototype.filter.call(form.querySelectorAll("input[name^=variant_name_]"), function (i) { return i.value.trim(); }).length || 2;
  }
  function weightSum() {
    var sum = 0;
    form.querySelectorAll("input.weight").forEach(function (w) {
      var row = w.name.split("_").pop(), name = form.querySelector("input[name=variant_name_" + row + "]");
      if (name && name.value.trim()) sum += parseFloat(w.value) || 0;
    });
    var el = document.getElementById("weight-sum");
    el.textContent = sum.toFixed(3); el.className = Math.abs(sum - 1) > 1e-6 ? "error" : "";
  }
  function calc() {
    var q = new URLSearchParams({
      baseline_rate: document.getElementById("calc-baseline").value, mde: document.getElementById("calc-mde").value,
      confidence_level: document.getElementById("confidence_level").value, arms: arms(),
      daily_traffic: document.getElementById("calc-traffic").value
    });
    fetch("/api/v1/ab-tests/sample-size?" + q, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
      .then(function (res) {
        var ok = res[0], b = res[1];
        if (!ok) { lastTotal = null; out.className = "error"; out.textContent = b.error ? b.error.message : "invalid input"; return; }
        lastTotal = b.total_users; out.className = "";
        out.textContent = b.users_per_arm.toLocaleString() + " users per variant × " + b.arms + " = " +
          b.total_users.toLocaleString() + " users" + (b.days_needed ? ", about " + b.days_needed + " days" : "");
      });
  }
  function later() { clearTimeout(timer); timer = setTimeout(calc, 200); }
  form.addEventListener("input", function (e) { weightSum(); if (e.target.closest(".calculator") || e.target.name === "confidence_level" || (e.target.name || "").indexOf("variant_name_") === 0) later(); });
  form.addEventListener("change", later);
  document.getElementById("calc-use").addEventListener("click", function () { if (lastTotal) target.value = lastTotal; });
  weightSum(); calc();
})();
