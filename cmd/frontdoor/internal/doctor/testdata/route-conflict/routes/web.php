<?php

use Illuminate\Support\Facades\Route;

// Fine: frontdoor leaves every /app path that is not the app key to PHP.
Route::get('/app/dashboard', fn () => view('dashboard'));

// Shadowed: 123456 is REVERB_APP_ID, so /apps/123456/… is the Pusher HTTP API.
Route::get('/apps/123456/report', fn () => view('report'));
