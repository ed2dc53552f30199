"""Cities the simulator places events, wallets and requests in (name, ISO country, lat, lon, continent,
relative population). Real coordinates, so great-circle distances behave as they would in production."""

from __future__ import annotations

CITIES: tuple[tuple[str, str, float, float, int, float], ...] = (
    # Europe (continent 0)
    ("London", "GB", 51.5074, -0.1278, 0, 9.0),
    ("Paris", "FR", 48.8566, 2.3522, 0, 7.0),
    ("Berlin", "DE", 52.5200, 13.4050, 0, 5.0),
    ("Madrid", "ES", 40.4168, -3.7038, 0, 4.5),
    ("Amsterdam", "NL", 52.3676, 4.9041, 0, 2.5),
    ("Milan", "IT", 45.4642, 9.1900, 0, 3.0),
    ("Stockholm", "SE", 59.3293, 18.0686, 0, 1.5),
    ("Warsaw", "PL", 52.2297, 21.0122, 0, 2.0),
    ("Dublin", "IE", 53.3498, -6.2603, 0, 1.2),
    ("Lisbon", "PT", 38.7223, -9.1393, 0, 1.3),
    # North America (1)
    ("New York", "US", 40.7128, -74.0060, 1, 9.5),
    ("Los Angeles", "US", 34.0522, -118.2437, 1, 7.5),
    ("Chicago", "US", 41.8781, -87.6298, 1, 5.0),
    ("Toronto", "CA", 43.6532, -79.3832, 1, 4.0),
    ("Austin", "US", 30.2672, -97.7431, 1, 2.0),
    ("Miami", "US", 25.7617, -80.1918, 1, 3.0),
    ("Mexico City", "MX", 19.4326, -99.1332, 1, 4.5),
    ("Vancouver", "CA", 49.2827, -123.1207, 1, 1.5),
    # Asia (2)
    ("Tokyo", "JP", 35.6762, 139.6503, 2, 8.0),
    ("Seoul", "KR", 37.5665, 126.9780, 2, 5.0),
    ("Singapore", "SG", 1.3521, 103.8198, 2, 3.0),
    ("Mumbai", "IN", 19.0760, 72.8777, 2, 5.0),
    ("Dubai", "AE", 25.2048, 55.2708, 2, 2.0),
    ("Bangkok", "TH", 13.7563, 100.5018, 2, 2.5),
    # South America (3)
    ("Sao Paulo", "BR", -23.5505, -46.6333, 3, 5.5),
    ("Buenos Aires", "AR", -34.6037, -58.3816, 3, 3.0),
    ("Bogota", "CO", 4.7110, -74.0721, 3, 2.0),
    # Africa (4)
    ("Lagos", "NG", 6.5244, 3.3792, 4, 3.0),
    ("Johannesburg", "ZA", -26.2041, 28.0473, 4, 2.0),
    ("Nairobi", "KE", -1.2921, 36.8219, 4, 1.5),
    # Oceania (5)
    ("Sydney", "AU", -33.8688, 151.2093, 5, 3.0),
    ("Auckland", "NZ", -36.8485, 174.7633, 5, 1.0),
)

# Hosting regions bot farms and proxies rent from: requests appear to come from these, not from homes.
DATACENTER_CITIES = ("Amsterdam", "Singapore", "New York", "Frankfurt-DC", "Ashburn-DC")
DATACENTERS: tuple[tuple[str, str, float, float, int, float], ...] = (
    ("Frankfurt-DC", "DE", 50.1109, 8.6821, 0, 1.0),
    ("Ashburn-DC", "US", 39.0438, -77.4874, 1, 1.0),
    ("Singapore-DC", "SG", 1.2900, 103.8500, 2, 1.0),
    ("Amsterdam-DC", "NL", 52.3500, 4.9200, 0, 1.0),
)
