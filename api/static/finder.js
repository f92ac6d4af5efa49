// The public finder page: "share my location" asks the browser for its position only when
// tapped, and puts it in the report form's hidden fields. Without this script (or without
// geolocation) the form still sends, without coordinates.
(function () {
  "use strict";
  const form = document.getElementById("finder-report");
  if (!form || !("geolocation" in navigator)) return;
  const button = form.querySelector("[data-share-location]");
  const state = form.querySelector("[data-location-state]");
  button.hidden = false;
  button.addEventListener("click", function () {
    button.disabled = true;
    navigator.geolocation.getCurrentPosition(function (position) {
      form.elements.latitude.value = position.coords.latitude.toFixed(6);
      form.elements.longitude.value = position.coords.longitude.toFixed(6);
      state.textContent = state.dataset.wordsLocated;
      state.hidden = false;
      button.hidden = true;
    }, function () {
      state.textContent = state.dataset.wordsDenied;
      state.hidden = false;
      button.disabled = false;
    }, { enableHighAccuracy: true, timeout: 10000, maximumAge: 60000 });
  });
})();
